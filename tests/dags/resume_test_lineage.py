"""
A resumable DAG whose tasks emit OpenLineage events (the end-to-end lineage test).

The shared test stack enables OpenLineage only for DAGs that ask for it (``[openlineage]
selective_enable``), so only this DAG's events are written. ``load`` fails while the Variable
``resume_test_lineage_fail`` is ``true``, and returns the logical date its code saw. The param
``table`` is there to be changed by a resume (the facet's ``changedInputs``).
"""

from __future__ import annotations

from airflow.sdk import DAG, Param, Variable, get_current_context, task

with DAG(
    "resume_test_lineage", schedule=None, params={"resume": True, "table": Param("orders", type="string")}
) as dag:

    @task
    def extract() -> dict:
        return {"rows": 3}

    @task
    def load(data: dict) -> dict:
        if Variable.get("resume_test_lineage_fail", default="false") == "true":
            raise RuntimeError("load: the target table is locked")
        context = get_current_context()
        logical_date, run_logical_date = context.get("logical_date"), context["dag_run"].logical_date
        return {
            "rows": data["rows"],
            "logical_date": logical_date and logical_date.isoformat(),
            "dag_run_logical_date": run_logical_date and run_logical_date.isoformat(),
            "ds_nodash": context.get("ds_nodash"),
            "task_instance_key_str": context["task_instance_key_str"],
        }

    load(extract())

try:  # the OpenLineage provider is an optional extra (not installed on every tested Airflow release)
    from airflow.providers.openlineage.utils.selective_enable import enable_lineage
except ImportError:
    pass
else:
    enable_lineage(dag)

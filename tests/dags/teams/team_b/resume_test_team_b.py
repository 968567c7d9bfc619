"""
The DAG of team B's DAG bundle on the shared test stack (``[core] multi_team``): a copy of
``resume_example_etl`` under its own id. ``transform`` fails unless the Variable
``resume_test_team_fail`` is "false".
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Variable, task

with DAG(
    dag_id="resume_test_team_b",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"resume": True},
):

    @task
    def extract(ti=None):
        rows = [{"id": i, "amount": i * 10} for i in range(1, 6)]
        ti.xcom_push(key="row_count", value=len(rows))
        return rows

    @task
    def transform(rows: list[dict], ds=None):
        if Variable.get("resume_test_team_fail", default="true").lower() == "true":
            raise RuntimeError("transform failed on purpose")
        return {"ds": ds, "total": sum(r["amount"] for r in rows)}

    transform(extract())

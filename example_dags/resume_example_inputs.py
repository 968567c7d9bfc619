"""
Fix the input, then resume: a linear DAG that fails because a param is set too tight.

``extract`` returns 12 rows; ``check`` refuses more rows than the ``threshold`` param (10 by default),
as a data-quality gate set too tight would. Nothing is wrong with the code: resume the failed run with
the threshold changed, and ``extract`` is not run again; ``check`` and ``load`` run with the new value.

    airflow resume run resume_example_inputs <run_id> --param threshold=20 --dry-run   # the diff and plan
    airflow resume run resume_example_inputs <run_id> --param threshold=20

or, in the run's Resume tab, "Change inputs". The resumed run's note says what changed.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param, task

with DAG(
    dag_id="resume_example_inputs",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={
        "resume": True,
        "threshold": Param(10, type="integer", minimum=1, description="Most rows the check accepts."),
        "region": Param("eu", enum=["eu", "us", "apac"], description="Where the rows are loaded."),
        "dry_load": Param(False, type="boolean", description="Load nothing; only report."),
        "columns": Param(["id", "amount"], type="array", description="Columns to load."),
        "label": Param("nightly", type="string", description="A label for the report."),
    },
    tags=["resume-example"],
    doc_md=__doc__,
):

    @task
    def extract():
        return [{"id": i, "amount": i * 10} for i in range(1, 13)]

    @task
    def check(rows: list[dict], params=None):
        if len(rows) > params["threshold"]:
            raise ValueError(
                f"{len(rows)} rows exceed the threshold {params['threshold']}: resume this run with a higher "
                "threshold (e.g. --param threshold=20)"
            )
        return rows

    @task
    def load(rows: list[dict], where: str = "", params=None, dag_run=None):
        columns = params["columns"]
        return {
            "rows": len(rows),
            "where": where,
            "threshold": params["threshold"],
            "columns": columns,
            "dry_load": params["dry_load"],
            "conf": dict(dag_run.conf or {}),
        }

    load(check(extract()), where="{{ params.region }}:{{ params.threshold }}")

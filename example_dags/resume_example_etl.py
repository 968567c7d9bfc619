"""
A linear ETL DAG with Job Resume enabled.

``transform`` fails while the Variable ``resume_example_fail`` is "true" (the default), as if its code
had a bug. Set the Variable to "false" (the fix), then resume the failed run: ``extract`` is not run
again; ``transform`` gets the rows ``extract`` returned in the failed run, and the same ``ds``.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Variable, task

with DAG(
    dag_id="resume_example_etl",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"resume": True},
    tags=["resume-example"],
    doc_md=__doc__,
):

    @task
    def extract(ti=None):
        rows = [{"id": i, "amount": i * 10} for i in range(1, 6)]
        ti.xcom_push(key="row_count", value=len(rows))
        return rows

    @task
    def transform(rows: list[dict], ds=None, ti=None):
        if Variable.get("resume_example_fail", default="true").lower() == "true":
            raise RuntimeError(
                "transform failed: set the Variable resume_example_fail to 'false', then resume this run"
            )
        row_count = ti.xcom_pull(task_ids="extract", key="row_count")
        return {"ds": ds, "rows": row_count, "total": sum(r["amount"] for r in rows)}

    @task
    def load(summary: dict):
        print(f"Loaded {summary['rows']} rows for {summary['ds']}: total {summary['total']}")
        return summary

    load(transform(extract()))

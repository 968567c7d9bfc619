"""
A linear DAG with a mapped step: one file per partition, each loaded by its own map index.

``list_partitions`` returns five partitions; ``load_partition`` is mapped over them (``.expand``) and
fails for the partition ``2026-01-04`` while the Variable ``resume_example_mapped_fail`` is "true"
(the default), as if that file were malformed. Set the Variable to "false" (the fix), then resume
the failed run: ``list_partitions`` is not run again, the four partitions that loaded are kept as they
were (not loaded twice), only ``2026-01-04`` is loaded again, and ``summarize`` gets all five results
in partition order, exactly as a run without the failure would have.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Variable, task

with DAG(
    dag_id="resume_example_mapped",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"resume": True},
    tags=["resume-example"],
    doc_md=__doc__,
):

    @task
    def list_partitions():
        return [f"2026-01-0{day}" for day in range(1, 6)]

    @task
    def load_partition(partition: str):
        if partition == "2026-01-04" and Variable.get("resume_example_mapped_fail", default="true") == "true":
            raise ValueError(f"partition {partition}: malformed row 17")
        return {"partition": partition, "rows": 100 + int(partition[-1])}

    @task
    def summarize(loaded: list):
        return {"partitions": [p["partition"] for p in loaded], "rows": sum(p["rows"] for p in loaded)}

    summarize(load_partition.expand(partition=list_partitions()))

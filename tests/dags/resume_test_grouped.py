"""
``resume_test_grouped``: a chain through a task group (``prepare >> load[extract >> write] >> report``).

A task group whose tasks form a chain keeps the DAG linear. ``load.write`` raises while the Variable
``resume_test_grouped_fail`` is "true" (the default).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, TaskGroup, Variable, task

with DAG(
    "resume_test_grouped",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"resume": True},
):

    @task
    def prepare():
        return {"rows": [1, 2, 3]}

    prepared = prepare()

    with TaskGroup("load") as load:

        @task
        def extract(data: dict):
            return [r * 10 for r in data["rows"]]

        @task
        def write(rows: list):
            if Variable.get("resume_test_grouped_fail", default="true").lower() == "true":
                raise RuntimeError("write failed on purpose")
            return sum(rows)

        write(extract(prepared))

    @task
    def report(total: int):
        return f"total={total}"

    report(load.children["load.write"].output)

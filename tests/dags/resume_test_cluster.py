"""
A linear DAG for the cluster tests: its middle task can be held running, so that a test can kill the
Celery worker that runs it.

``work`` waits while the Variable ``resume_test_cluster_hold`` is "true" (at most 10 minutes), then
passes on what ``prepare`` returned: a value made once per run, so a test can tell which run's value
a resumed run received.
"""

from __future__ import annotations

import time
import uuid

from airflow.sdk import DAG, Variable, task

with DAG("resume_test_cluster", schedule=None, params={"resume": True}):

    @task
    def prepare(run_id=None):
        return {"made_in": run_id, "token": uuid.uuid4().hex}

    @task
    def work(value: dict):
        deadline = time.monotonic() + 600
        while Variable.get("resume_test_cluster_hold", default="false") == "true":
            if time.monotonic() > deadline:
                raise TimeoutError("held for 10 minutes: nobody released resume_test_cluster_hold")
            time.sleep(2)
        return value

    @task
    def report(value: dict):
        return value

    report(work(prepare()))

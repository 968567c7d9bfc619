"""A linear DAG whose middle task runs long enough to be marked failed (or killed) by hand."""

from __future__ import annotations

import time

from airflow.sdk import DAG, task

with DAG("resume_test_sleepy", schedule=None, params={"resume": True}):

    @task
    def before():
        return "ready"

    @task
    def sleepy(value: str):
        time.sleep(600)
        return value

    @task
    def after(value: str):
        return value

    after(sleepy(before()))

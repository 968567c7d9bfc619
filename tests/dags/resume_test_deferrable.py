"""
``resume_test_deferrable``: ``defers`` pushes an XCom, defers for a second (the triggerer fires
``TimeDeltaTrigger``), and once resumed pushes one with ``xcom_push`` and one with ``axcom_push`` (where
the Task SDK has it; not when the Variable ``resume_test_deferrable_axcom`` is "false": ``dag.test()``
has no async channel to the API server). ``consume`` reads them all; it raises while the Variable
``resume_test_deferrable_fail`` is "true".
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from airflow.providers.standard.triggers.temporal import TimeDeltaTrigger
from airflow.sdk import DAG, BaseOperator, Variable, task

KEYS = ("before_defer", "after_defer", "async_push")


class PushThenDefer(BaseOperator):
    def execute(self, context):
        context["ti"].xcom_push(key="before_defer", value="pushed before defer()")
        self.defer(trigger=TimeDeltaTrigger(timedelta(seconds=1)), method_name="resume")

    def resume(self, context, event=None):
        ti = context["ti"]
        ti.xcom_push(key="after_defer", value="pushed after the trigger fired")
        if (
            hasattr(ti, "axcom_push")
            and Variable.get("resume_test_deferrable_axcom", default="true") == "true"
        ):
            asyncio.run(ti.axcom_push(key="async_push", value="pushed with axcom_push"))
        return "resumed"


with DAG("resume_test_deferrable", schedule=None, params={"resume": True}):

    @task
    def consume(value: str, ti=None):
        if Variable.get("resume_test_deferrable_fail", default="false") == "true":
            raise ValueError("fails on purpose")
        return {"return_value": value, **{key: ti.xcom_pull(task_ids="defers", key=key) for key in KEYS}}

    consume(PushThenDefer(task_id="defers").output)

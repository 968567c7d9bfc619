"""
``resume_test_xcom_rejected``: the end-to-end stack's XCom backend (``tests/xcom_backend.py``) refuses
the provider's announcements of this DAG's tasks. ``pushes`` pushes keys of its own with
``ti.xcom_push``; ``fails`` raises while the Variable ``resume_test_xcom_rejected_fail`` is "true".
Both must run and end exactly as they would without the provider.
"""

from __future__ import annotations

from airflow.sdk import DAG, Variable, task

with DAG("resume_test_xcom_rejected", schedule=None, params={"resume": True}):

    @task
    def pushes(ti=None):
        ti.xcom_push(key="extra", value={"id": 1})
        ti.xcom_push(key="second", value=2)
        return "pushed"

    @task
    def fails(value: str, ti=None):
        if Variable.get("resume_test_xcom_rejected_fail", default="false") == "true":
            raise ValueError("fails on purpose")
        return {"value": value, "extra": ti.xcom_pull(task_ids="pushes", key="extra")}

    fails(pushes())

"""
A task that forges the provider's bookkeeping XCom ``resume_state_ref``, pointing the next task's
state at ``dag_run.conf["target"]`` (any URL or path); the next task fails, so viewing or resuming the
run makes the provider follow that link, unless it refuses links outside its state folder.
"""

from __future__ import annotations

from airflow.sdk import DAG, task

with DAG("resume_test_poisoned", schedule=None, params={"resume": True}):

    @task
    def poison(ti=None, dag_run=None):
        target = (dag_run.conf or {}).get("target", "")
        ti.xcom_push(key="resume_state_ref", value={"path": target, "digest": "0" * 64, "xcom_keys": []})
        return "poisoned"

    @task
    def victim(value: str):
        raise RuntimeError(f"victim fails after {value}")

    victim(poison())

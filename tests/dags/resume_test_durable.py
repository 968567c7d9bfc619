"""
A durable operator (``ResumableJobMixin``) against a fake external system, for carrying the task state
store into a resumed run.

The external system is a JSON "job table" in the file named by the Variable ``resume_test_job_table``:
``{"jobs": [{"id", "status", "result"}]}``. Submitting appends a job with status ``running``; tests
set a job's status to ``succeeded`` or ``failed``. With the Variable ``resume_test_durable_lose_worker``
set to ``true``, polling raises (the worker lost while the job runs on).

Before Airflow 3.3 (no ``ResumableJobMixin``) the operator submits on every try.
``resume_test_durable`` carries the task state (the default); ``resume_test_durable_no_carry`` sets
``carry_task_state: false``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, BaseOperator, Variable, task

try:
    from airflow.sdk import ResumableJobMixin

    BASES: tuple[type, ...] = (ResumableJobMixin, BaseOperator)
except ImportError:  # Airflow < 3.3: no task state store, so the operator always submits
    BASES = (BaseOperator,)

POLL_SECONDS = 0.2
POLL_TIMEOUT = 600


def _table() -> Path:
    return Path(Variable.get("resume_test_job_table"))


def _jobs() -> list[dict[str, Any]]:
    path = _table()
    return json.loads(path.read_text())["jobs"] if path.exists() else []


def _job(job_id: Any) -> dict[str, Any]:
    for job in _jobs():
        if job["id"] == job_id:
            return job
    raise LookupError(f"no job {job_id!r} in the job table")


def write_jobs(path: Path, jobs: list[dict[str, Any]]) -> None:
    """Replace the job table at once, so a reader never sees it half written."""
    scratch = path.with_name(path.name + ".tmp")
    scratch.write_text(json.dumps({"jobs": jobs}))
    os.replace(scratch, path)


class FakeJobOperator(*BASES):  # type: ignore[misc]
    """Submits one job to the job table and waits for it."""

    external_id_key = "fake_job_id"

    def execute(self, context: Any) -> Any:
        if hasattr(self, "execute_resumable"):
            return self.execute_resumable(context)
        return self.poll_until_complete(self.submit_job(context), context)

    def submit_job(self, context: Any) -> str:
        jobs = _jobs()
        job_id = f"job-{len(jobs) + 1}"
        rows = context["ti"].xcom_pull(task_ids="prepare")
        jobs.append({"id": job_id, "status": "running", "result": {"job_id": job_id, "rows": rows}})
        write_jobs(_table(), jobs)
        return job_id

    def get_job_status(self, external_id: Any, context: Any) -> str:
        return _job(external_id)["status"]

    def is_job_active(self, status: str) -> bool:
        return status == "running"

    def is_job_succeeded(self, status: str) -> bool:
        return status == "succeeded"

    def poll_until_complete(self, external_id: Any, context: Any) -> Any:
        # Returns the result too: the mixin returns what this returns when it reconnects.
        deadline = time.monotonic() + POLL_TIMEOUT
        while time.monotonic() < deadline:
            status = self.get_job_status(external_id, context)
            if self.is_job_succeeded(status):
                return self.get_job_result(external_id, context)
            if not self.is_job_active(status):
                raise RuntimeError(f"job {external_id} ended {status}")
            if Variable.get("resume_test_durable_lose_worker", default="") == "true":
                raise RuntimeError(f"lost the worker while job {external_id} runs")
            time.sleep(POLL_SECONDS)
        raise TimeoutError(f"job {external_id} still running after {POLL_TIMEOUT}s")

    def get_job_result(self, external_id: Any, context: Any) -> Any:
        return _job(external_id)["result"]


def _durable_dag(dag_id: str, resume: Any) -> None:
    with DAG(dag_id, schedule=None, params={"resume": resume}):

        @task
        def prepare():
            return 42

        @task
        def report(result: dict):
            return {"reported": result}

        submit = FakeJobOperator(task_id="submit_and_wait")
        prepare() >> submit
        report(submit.output)


_durable_dag("resume_test_durable", True)
_durable_dag("resume_test_durable_no_carry", {"carry_task_state": False})

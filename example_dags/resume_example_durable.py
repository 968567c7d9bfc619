"""
A durable operator (``airflow.sdk.ResumableJobMixin``, Airflow 3.3 and later) under Job Resume.

``run_job`` submits a job to a pretend external system (a JSON file in the temporary folder; each job
finishes ``resume_example_job_seconds`` seconds, default 30, after it is submitted) and waits for it. While the Variable
``resume_example_lose_worker`` is "true" (the default), the wait fails as if the worker had died; the
job runs on. Set the Variable to "false" and resume the failed run: the resumed run carries the job id,
so ``run_job`` reattaches to the job it submitted instead of submitting a second one (the Resume page
shows "reattaches to job_id=..."). With ``params={"resume": {"carry_task_state": False}}`` it would
submit a new job, as it does before Airflow 3.3.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG, BaseOperator, Variable, task

try:
    from airflow.sdk import ResumableJobMixin

    BASES: tuple[type, ...] = (ResumableJobMixin, BaseOperator)
except ImportError:  # Airflow < 3.3: no task state store; each try submits a job
    BASES = (BaseOperator,)


def _table() -> Path:
    return Path(tempfile.gettempdir()) / "resume_example_jobs.json"


def _jobs() -> dict[str, float]:
    """job id -> when it was submitted."""
    return json.loads(_table().read_text()) if _table().exists() else {}


class PretendJobOperator(*BASES):  # type: ignore[misc]
    external_id_key = "job_id"

    def execute(self, context: Any) -> Any:
        if hasattr(self, "execute_resumable"):
            return self.execute_resumable(context)
        return self.poll_until_complete(self.submit_job(context), context)

    def submit_job(self, context: Any) -> str:
        jobs = _jobs()
        job_id = f"job-{len(jobs) + 1}"
        _table().write_text(json.dumps({**jobs, job_id: time.time()}))
        self.log.info("Submitted %s", job_id)
        return job_id

    def get_job_status(self, external_id: Any, context: Any) -> str:
        submitted = _jobs().get(external_id)
        if submitted is None:
            return "unknown"
        seconds = float(Variable.get("resume_example_job_seconds", default="30"))
        return "done" if time.time() >= submitted + seconds else "running"

    def is_job_active(self, status: str) -> bool:
        return status == "running"

    def is_job_succeeded(self, status: str) -> bool:
        return status == "done"

    def poll_until_complete(self, external_id: Any, context: Any) -> Any:
        # Returns the result too: the mixin returns what this returns when it reattaches.
        while (status := self.get_job_status(external_id, context)) == "running":
            if Variable.get("resume_example_lose_worker", default="true") == "true":
                raise RuntimeError(f"worker lost while {external_id} runs")
            time.sleep(2)
        if status != "done":
            raise RuntimeError(f"{external_id} ended {status}")
        return self.get_job_result(external_id, context)

    def get_job_result(self, external_id: Any, context: Any) -> Any:
        return {"job_id": external_id}


with DAG(
    dag_id="resume_example_durable",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"resume": True},
    tags=["resume-example"],
    doc_md=__doc__,
):

    @task
    def prepare():
        return "input-ready"

    @task
    def report(result: dict):
        print(f"The job that ran: {result['job_id']}")
        return result

    job = PretendJobOperator(task_id="run_job")
    prepare() >> job
    report(job.output)

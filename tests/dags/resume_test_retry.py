"""
Linear DAGs with automatic retries for the end-to-end tests.

``flaky`` fails while it has run fewer than ``<dag_id>_failures`` times (Variable, default 2): it raises
``error`` or, with ``kill``, SIGKILLs its own process (no exception recorded). Every task appends its
name to ``<resume_test_ledger_dir>/<dag_id>.txt`` so tests count executions.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from airflow.sdk import DAG, Variable, task


def _record(dag_id: str, step: str) -> int:
    """Append ``step`` to the DAG's ledger; return how often ``step`` ran, this time included."""
    folder = Variable.get("resume_test_ledger_dir", default="")
    if not folder:
        return 1
    ledger = Path(folder) / f"{dag_id}.txt"
    with ledger.open("a") as fh:
        fh.write(step + "\n")
    return ledger.read_text().split().count(step)


def _delete_state_of_first(dag_id: str, run_id: str) -> None:
    """Delete the state file ``first`` wrote in this run, wherever the state folder is (local or S3)."""
    from airflow_resume_provider.state import storage

    storage.delete(
        storage.location_for(dag_id=dag_id, run_id=run_id, task_id="first", map_index=-1, try_number=1)
    )


def flaky_dag(
    dag_id: str,
    resume: dict,
    *,
    same_error: bool = False,
    sleep: bool = False,
    lose_state: bool = False,
    error: type[Exception] = ConnectionError,
    kill: bool = False,
) -> DAG:
    with DAG(dag_id, schedule=None, params={"resume": resume}) as dag:

        @task
        def first(ti=None, logical_date=None, params=None):
            _record(dag_id, "first")
            if lose_state:
                ti.xcom_push("seen", {"logical_date": str(logical_date), "region": params.get("region")})
            return 21

        @task
        def flaky(value: int, run_id=None):
            count = _record(dag_id, "flaky")
            if lose_state:
                _delete_state_of_first(dag_id, run_id)
            if sleep:
                time.sleep(600)
            if count <= int(Variable.get(f"{dag_id}_failures", default="2")):
                if kill:
                    os.kill(os.getpid(), signal.SIGKILL)
                detail = "backend unavailable" if same_error else f"backend unavailable (attempt {count})"
                raise error(detail)
            return value * 2

        @task
        def last(value: int):
            _record(dag_id, "last")
            return value

        last(flaky(first()))
    return dag


flaky_dag("resume_test_retry_two", {"retries": 2, "retry_delay": 1, "on_retry": True})
flaky_dag("resume_test_retry_one", {"retries": 1, "on_retry": True})
flaky_dag("resume_test_retry_fresh", {"retries": 1, "on_retry": False})
# Its run loses the state of its first task before it fails: a full rerun does not need it.
flaky_dag("resume_test_retry_fresh_lost", {"retries": 1, "on_retry": False}, lose_state=True)
flaky_dag("resume_test_retry_same_error", {"retries": 3, "on_retry": True}, same_error=True)
flaky_dag(
    "resume_test_retry_filtered", {"retries": 2, "on_retry": True, "retry_exceptions": ["TimeoutError"]}
)
flaky_dag("resume_test_retry_crash", {"retries": 1, "on_retry": True})
flaky_dag("resume_test_retry_sleepy", {"retries": 2, "on_retry": True}, sleep=True)
# Cause-aware retries: only failures of the infrastructure are retried.
flaky_dag(
    "resume_test_retry_code_error",
    {"retries": 1, "on_retry": True, "retry_on": ["infrastructure"]},
    error=ValueError,
)
flaky_dag(
    "resume_test_retry_killed", {"retries": 1, "on_retry": True, "retry_on": ["infrastructure"]}, kill=True
)

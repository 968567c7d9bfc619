"""
The scheduler's side of resume on retry: start the worker process, hand failed runs to it, and start
a new worker when it died. Nothing here blocks, raises into the scheduler, or touches its session.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from typing import Any

from airflow_resume_provider.compat import SERVER_PROCESS_CONTEXT
from airflow_resume_provider.exceptions import ResumeConfigError
from airflow_resume_provider.guard import SCHEDULER, never_raises
from airflow_resume_provider.resume_param import settings_for

log = logging.getLogger(__name__)

#: The ``on_dag_run_failed`` message of a run failed by its tasks (not a timeout, not by hand).
TASK_FAILURE = "task_failure"
SCHEDULER_JOB_TYPE = "SchedulerJob"
WORKER_MODULE = "airflow_resume_provider.retry.worker"


class WorkerProcess:
    """The scheduler's handle on the retry worker process."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        # fork+exec of a fresh interpreter: safe from any thread, shares no state with the scheduler.
        self.process = subprocess.Popen(
            [sys.executable, "-m", WORKER_MODULE],
            stdin=subprocess.PIPE,
            close_fds=True,
            # A server-side component: connections may live in the metadata DB.
            env={**os.environ, **SERVER_PROCESS_CONTEXT},
        )
        assert self.process.stdin is not None
        self.fd = self.process.stdin.fileno()
        os.set_blocking(self.fd, False)

    def alive(self) -> bool:
        return self.process.poll() is None

    def submit(self, dag_id: str, run_id: str) -> None:
        """Hand a failed run over without ever blocking the scheduler; the sweep covers a lost one."""
        line = json.dumps({"dag_id": dag_id, "run_id": run_id}).encode() + b"\n"
        try:
            os.write(self.fd, line)
        except (BlockingIOError, BrokenPipeError) as err:
            log.warning(
                "Retry worker busy or gone (%s); the next sweep retries run %s of DAG %s.",
                err,
                run_id,
                dag_id,
            )

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()


_worker: WorkerProcess | None = None
#: A worker that keeps dying is started again at most this often, doubling up to the maximum: a
#: broken worker must not cost the scheduler a new interpreter on every run event.
RESTART_BACKOFF_SECONDS = 1.0
MAX_RESTART_BACKOFF_SECONDS = 300.0
_restart_backoff = RESTART_BACKOFF_SECONDS
_next_restart = 0.0


def start_worker() -> None:
    global _worker
    if _worker is None or _worker.pid != os.getpid():
        _worker = WorkerProcess()


def current_worker() -> WorkerProcess | None:
    """This scheduler's worker; a new one when it died (its sweep then creates the due retries)."""
    global _worker, _restart_backoff, _next_restart
    worker = _worker
    if worker is None or worker.pid != os.getpid():
        return None
    if worker.alive():
        return worker
    now = time.monotonic()
    if now < _next_restart:
        return None  # the sweep of the next worker covers what is handed over meanwhile
    log.warning(
        "The resume retry worker (pid %s) exited with %s; starting a new one (the next restart waits at "
        "least %.0f s).",
        worker.process.pid,
        worker.process.returncode,
        _restart_backoff,
    )
    _next_restart = now + _restart_backoff
    _restart_backoff = min(_restart_backoff * 2, MAX_RESTART_BACKOFF_SECONDS)
    _worker = worker = WorkerProcess()
    return worker


def start_worker_when(job_type: Any, wait_seconds: float = 30.0) -> None:
    """Start the worker once ``job_type()`` is known and is the scheduler's (checked off-thread)."""

    @never_raises("Starting the resume retry worker", SCHEDULER)
    def wait() -> None:
        deadline = time.monotonic() + wait_seconds
        while time.monotonic() < deadline:
            kind = job_type()
            if kind is not None:
                if kind == SCHEDULER_JOB_TYPE:
                    start_worker()
                return
            time.sleep(0.1)

    threading.Thread(target=wait, name="resume-retry-start", daemon=True).start()


def stop_worker() -> None:
    global _worker
    if _worker is not None and _worker.pid == os.getpid():
        _worker.stop()
    _worker = None


def on_run_failed(dag_run: Any, msg: str) -> None:
    """Called by the scheduler's listener: hand the run to the worker if a retry may be due. Returns at once."""
    if msg != TASK_FAILURE:
        return
    dag = getattr(dag_run, "dag", None)
    if dag is not None:
        try:
            if settings_for(dag).retries == 0:
                return
        except ResumeConfigError:
            return
    worker = current_worker()
    if worker is not None:
        worker.submit(dag_run.dag_id, dag_run.run_id)


def on_run_event() -> None:
    """Called on the scheduler's other run events: notice a dead worker early."""
    current_worker()

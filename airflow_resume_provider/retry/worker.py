"""
The retry worker process: ``python -m airflow_resume_provider.retry.worker``, started by a scheduler.

It reads ``{"dag_id", "run_id"}`` lines on stdin, retries those failures once they are committed, and
sweeps for missed ones. A separate process, so that nothing runs beside the scheduler's own threads
while it forks executor workers, and the scheduler's database session is never touched. It exits when
its scheduler is gone: stdin closes, or the process is re-parented (checked at least every second).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

from airflow_resume_provider import conf
from airflow_resume_provider.exceptions import SchedulerGone
from airflow_resume_provider.retry.scheduling import handle, sweep

# Named explicitly: the worker process runs this module as __main__.
log = logging.getLogger("airflow_resume_provider.retry.worker")

COMMIT_WAIT_SECONDS = 60.0
PARENT_CHECK_SECONDS = 1.0


class RetryLoop:
    """The worker's loop: retry failures as they are reported, and sweep for missed ones."""

    def __init__(self, parent_pid: int | None = None) -> None:
        self.decided: set[tuple[str, str]] = set()
        self.next_sweep = time.monotonic()
        self.parent_pid = parent_pid

    @staticmethod
    def session_factory() -> Any:
        from airflow.utils.session import create_session

        return create_session(scoped=False)

    def check_parent(self) -> None:
        if self.parent_pid is not None and os.getppid() != self.parent_pid:
            raise SchedulerGone(f"scheduler pid {self.parent_pid} is gone")

    def seconds_to_sweep(self) -> float:
        return max(0.0, self.next_sweep - time.monotonic())

    def sweep_if_due(self) -> None:
        if time.monotonic() < self.next_sweep:
            return
        try:
            sweep(self.session_factory, self.decided)
        except Exception:
            log.warning("Resume retry sweep failed; no impact on the scheduler.", exc_info=True)
        self.next_sweep = time.monotonic() + conf.retry_sweep_interval()

    def retry_when_committed(self, dag_id: str, run_id: str) -> None:
        from airflow.models.dagrun import DagRun
        from sqlalchemy import select

        # The listener runs before the scheduler commits the failure; wait for it to be visible.
        deadline = time.monotonic() + COMMIT_WAIT_SECONDS
        while time.monotonic() < deadline:
            self.check_parent()
            with self.session_factory() as session:
                state = session.scalar(
                    select(DagRun.state).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)
                )
            if state == "failed":
                decision = handle(self.session_factory, dag_id, run_id)
                if decision is None or decision.final:
                    self.decided.add((dag_id, run_id))
                return
            if state not in ("running", "queued"):
                return
            time.sleep(0.2)


def run_worker() -> None:
    import select

    import airflow  # noqa: F401  (initialises Airflow's settings and logging in this process)

    parent = os.getppid()
    loop = RetryLoop(parent_pid=parent)
    buffer = b""
    log.info("Resume retry worker started for scheduler pid %s", parent)
    try:
        while True:
            loop.check_parent()
            timeout = min(loop.seconds_to_sweep(), PARENT_CHECK_SECONDS)
            ready, _, _ = select.select([sys.stdin.fileno()], [], [], timeout)
            if ready:
                chunk = os.read(sys.stdin.fileno(), 65536)
                if not chunk:
                    return  # the scheduler closed the pipe
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    try:
                        item = json.loads(line)
                        loop.retry_when_committed(str(item["dag_id"]), str(item["run_id"]))
                    except SchedulerGone:
                        raise
                    except Exception:
                        log.warning("Could not handle %r; no impact on the scheduler.", line, exc_info=True)
            loop.sweep_if_due()
    except SchedulerGone as gone:
        log.info("Resume retry worker stops: %s", gone)


if __name__ == "__main__":
    run_worker()

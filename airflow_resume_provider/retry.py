"""
Resume on retry: bounded, automatic DAG-run-level retries, created on the scheduler's side.

The scheduler's ``on_dag_run_failed`` listener only hands the failed run over and returns: it
never touches the scheduler's session (a commit there stops the scheduler). A worker process with
its own sessions waits until the failure is committed, decides (:func:`decide_retry`, a pure
function), and creates the retry through the resume service: a resumed run at the failed task
(``on_retry: true``) or a full rerun with the same inputs (``on_retry: false``), after
``retry_delay``. A periodic sweep catches failures whose retry was not created (a scheduler stopped
in between). Run ids are deterministic, so a failure is retried at most once, also with several
schedulers. Every decision is written in the failed run's note.

The worker is a separate process (``python -m airflow_resume_provider.retry``) started by the scheduler;
the listener hands failed runs to it over a pipe without blocking.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from airflow_resume_provider import conf, marker
from airflow_resume_provider.exceptions import ResumeConfigError
from airflow_resume_provider.facts import gather_facts
from airflow_resume_provider.resumability import MANUAL_KILL, STATE_UNREACHABLE, Verdict, decide
from airflow_resume_provider.settings import ResumeSettings, settings_for

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

# Named explicitly: the worker process runs this module as __main__.
log = logging.getLogger("airflow_resume_provider.retry")

#: The ``on_dag_run_failed`` message of a run failed by its tasks (not a timeout, not by hand).
TASK_FAILURE = "task_failure"
SCHEDULER_JOB_TYPE = "SchedulerJob"
COMMIT_WAIT_SECONDS = 60.0


@dataclass(frozen=True)
class RetryDecision:
    retry: bool
    #: The attempt number the retry is (or would have been), counted across the chain of runs.
    attempt: int
    note: str
    #: False when the decision may change later (e.g. the state folder was unreachable).
    final: bool = True


def _failure_signature(failure: dict[str, Any] | None, task_id: str | None) -> list[Any] | None:
    if not failure:
        return None
    return [task_id, failure.get("exception_type"), failure.get("message")]


def decide_retry(
    settings: ResumeSettings, verdict: Verdict, source_marker: marker.RunMarker | None
) -> RetryDecision:
    """
    Whether a failed run is retried automatically, as a pure function of recorded facts.

    :param source_marker: the provider's signed record of the failed run, None for a run it did not create.
    """
    attempt = (source_marker.retry_attempt if source_marker is not None else 0) + 1
    failure = verdict.failure
    if verdict.reason_code == MANUAL_KILL:
        return RetryDecision(False, attempt, "Not retried: the run was stopped by hand.")
    if verdict.reason_code == STATE_UNREACHABLE:
        return RetryDecision(False, attempt, f"Retry postponed: {verdict.reason}", final=False)
    if not verdict.resumable:
        return RetryDecision(False, attempt, f"Not retried: {verdict.reason}")
    if attempt > settings.retries:
        return RetryDecision(
            False,
            attempt,
            f"Not retried: automatic retries exhausted ({settings.retries} of {settings.retries}).",
        )
    if settings.retry_exceptions:
        kind = (failure or {}).get("exception_type")
        if kind not in settings.retry_exceptions:
            return RetryDecision(
                False,
                attempt,
                f"Not retried: the error {kind or '(none recorded)'} is not in retry_exceptions "
                f"{settings.retry_exceptions}.",
            )
    if settings.retry_message_pattern:
        message = (failure or {}).get("message") or ""
        if not re.search(settings.retry_message_pattern, message):
            return RetryDecision(
                False,
                attempt,
                f"Not retried: the error message does not match retry_message_pattern {settings.retry_message_pattern!r}.",
            )
    if settings.stop_on_repeated_error:
        current = _failure_signature(failure, verdict.failed_task_id)
        previous = source_marker.parent_failure if source_marker is not None else None
        if current is not None and previous and current == list(previous):
            return RetryDecision(
                False,
                attempt,
                f"Not retried: task {verdict.failed_task_id!r} failed twice in a row with the same error "
                f"({failure.get('exception_type')}: {failure.get('message')}); retrying again would not help.",  # type: ignore[union-attr]
            )
    return RetryDecision(True, attempt, "")


def _append_note(session: Session, dag_run: Any, text: str) -> None:
    """Add ``text`` to the run's note once (the sweep may decide the same thing again)."""
    current = dag_run.note or ""
    if text in current:
        return
    dag_run.note = f"{current}\n{text}".strip() if current else text
    session.commit()


def schedule_retry(session: Session, dag_id: str, run_id: str) -> RetryDecision | None:
    """
    Decide and, if due, create the automatic retry of a failed run. Commits ``session``.

    :return: the decision, or None when the run is not a candidate (retries off, not failed).
    """
    from airflow_resume_provider.resume import KIND_RETRY, RunNotFoundError, load_dag_and_run, resume

    try:
        dag, dag_run = load_dag_and_run(session, dag_id, run_id)
        settings = settings_for(dag)
    except (RunNotFoundError, ResumeConfigError):
        return None
    if not settings.enabled or settings.retries == 0 or dag_run.state != "failed":
        return None
    own = marker.check_quietly(dag_id, run_id, dag_run.conf).marker
    verdict = decide(gather_facts(session, dag, dag_run))
    if verdict.resumed_run_id:
        return RetryDecision(False, (own.retry_attempt if own else 0) + 1, "already resumed")
    decision = decide_retry(settings, verdict, own)
    if not decision.retry:
        if decision.final:
            _append_note(session, dag_run, decision.note)
        log.info("Run %s of DAG %s: %s", run_id, dag_id, decision.note)
        return decision

    from_task = None if settings.on_retry else verdict.plan[0].task_id
    how = (
        f"resumed from {run_id} at {verdict.failed_task_id}"
        if settings.on_retry
        else f"full rerun of {run_id}"
    )
    outcome = resume(
        session,
        dag_id,
        run_id,
        from_task_id=from_task,
        triggered_by="timetable",
        delay_seconds=settings.retry_delay,
        kind=KIND_RETRY,
        retry_attempt=decision.attempt,
        note=f"Automatic retry {decision.attempt} of {settings.retries}: {how}",
        parent_failure=_failure_signature(verdict.failure, verdict.failed_task_id),
    )
    if outcome.created:
        _, dag_run = load_dag_and_run(session, dag_id, run_id)
        _append_note(
            session,
            dag_run,
            f"Retried automatically as {outcome.dag_run_id} (attempt {decision.attempt} of {settings.retries}).",
        )
        log.info("Run %s of DAG %s failed; retry %s created", run_id, dag_id, outcome.dag_run_id)
    return decision


def sweep(session_factory: Any, decided: set[tuple[str, str]]) -> int:
    """Retry recent failed runs that are due one and have none; returns how many were created."""
    from airflow.models.dagbag import DBDagBag
    from airflow.models.dagrun import DagRun
    from sqlalchemy import select

    cutoff = datetime.now(timezone.utc) - timedelta(seconds=conf.retry_sweep_lookback())
    with session_factory() as session:
        rows = session.execute(
            select(DagRun.dag_id, DagRun.run_id).where(DagRun.state == "failed", DagRun.end_date >= cutoff)
        ).all()
        candidates: dict[str, list[str]] = {}
        for dag_id, run_id in rows:
            if (dag_id, run_id) not in decided:
                candidates.setdefault(dag_id, []).append(run_id)
        wanted = set()
        for dag_id in candidates:
            dag = DBDagBag().get_latest_version_of_dag(dag_id, session=session)
            try:
                if dag is not None and settings_for(dag).retries > 0:
                    wanted.add(dag_id)
            except ResumeConfigError:
                continue
    created = 0
    for dag_id in wanted:
        for run_id in candidates[dag_id]:
            decision = _handle(session_factory, dag_id, run_id)
            if decision is None or decision.final:
                decided.add((dag_id, run_id))
            if decision is not None and decision.retry:
                created += 1
    return created


def _handle(session_factory: Any, dag_id: str, run_id: str) -> RetryDecision | None:
    try:
        with session_factory() as session:
            return schedule_retry(session, dag_id, run_id)
    except Exception:
        log.warning(
            "Automatic retry of run %s of DAG %s failed; no impact on the scheduler.",
            run_id,
            dag_id,
            exc_info=True,
        )
        return RetryDecision(False, 0, "error", final=False)


class RetryLoop:
    """The worker's loop: retry failures as they are reported, and sweep for missed ones."""

    def __init__(self) -> None:
        self.decided: set[tuple[str, str]] = set()
        self.next_sweep = time.monotonic()

    @staticmethod
    def session_factory():
        from airflow.utils.session import create_session

        return create_session(scoped=False)

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
            with self.session_factory() as session:
                state = session.scalar(
                    select(DagRun.state).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)
                )
            if state == "failed":
                decision = _handle(self.session_factory, dag_id, run_id)
                if decision is None or decision.final:
                    self.decided.add((dag_id, run_id))
                return
            if state not in ("running", "queued"):
                return
            time.sleep(0.2)


def run_worker() -> None:
    """
    The retry worker process: reads ``{"dag_id", "run_id"}`` lines on stdin from the scheduler.

    A separate process, so that nothing runs beside the scheduler's own threads while it forks
    executor workers, and the scheduler's database session is never touched. Exits when stdin
    closes, i.e. when the scheduler stops or dies.
    """
    import select

    import airflow  # noqa: F401  (initialises Airflow's settings and logging in this process)

    loop = RetryLoop()
    buffer = b""
    log.info("Resume retry worker started for scheduler pid %s", os.getppid())
    while True:
        ready, _, _ = select.select([sys.stdin.fileno()], [], [], min(loop.seconds_to_sweep(), 5.0))
        if ready:
            chunk = os.read(sys.stdin.fileno(), 65536)
            if not chunk:
                return  # the scheduler is gone
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                try:
                    item = json.loads(line)
                    loop.retry_when_committed(str(item["dag_id"]), str(item["run_id"]))
                except Exception:
                    log.warning("Could not handle %r; no impact on the scheduler.", line, exc_info=True)
        loop.sweep_if_due()


class WorkerProcess:
    """The scheduler's handle on the retry worker process."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        # fork+exec of a fresh interpreter: safe from any thread, shares no state with the scheduler.
        self.process = subprocess.Popen(
            [sys.executable, "-m", "airflow_resume_provider.retry"],
            stdin=subprocess.PIPE,
            close_fds=True,
            # A server-side component: connections may live in the metadata DB.
            env={**os.environ, "_AIRFLOW_PROCESS_CONTEXT": "server"},
        )
        assert self.process.stdin is not None
        self.fd = self.process.stdin.fileno()
        os.set_blocking(self.fd, False)

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


def start_worker() -> None:
    global _worker
    if _worker is None or _worker.pid != os.getpid():
        _worker = WorkerProcess()


def start_worker_when(job_type: Any, wait_seconds: float = 30.0) -> None:
    """Start the worker once ``job_type()`` is known and is the scheduler's (checked off-thread)."""

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
    worker = _worker
    if worker is None or worker.pid != os.getpid() or msg != TASK_FAILURE:
        return
    dag = getattr(dag_run, "dag", None)
    if dag is not None:
        try:
            if settings_for(dag).retries == 0:
                return
        except ResumeConfigError:
            return
    worker.submit(dag_run.dag_id, dag_run.run_id)


if __name__ == "__main__":
    run_worker()

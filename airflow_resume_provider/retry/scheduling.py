"""
Deciding and creating one automatic retry through the resume service, and the sweep for missed ones.

Runs in the retry worker process, with its own sessions. Run ids are deterministic, so a failure is
retried at most once, also with several schedulers. Every decision is written in the failed run's note.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from airflow_resume_provider import conf, metrics, run_record
from airflow_resume_provider.causes import UNKNOWN, cause_of
from airflow_resume_provider.exceptions import ResumeConfigError, RunNotFoundError
from airflow_resume_provider.facts import gather_facts
from airflow_resume_provider.persisted import RETRIES_TAG
from airflow_resume_provider.resumability import decide
from airflow_resume_provider.resume_param import settings_for
from airflow_resume_provider.retry.decision import RetryDecision, decide_retry, failure_signature

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

log = logging.getLogger(__name__)


def append_note(session: Session, dag_run: Any, text: str) -> bool:
    """
    Add ``text`` to the run's note once (the sweep may decide the same thing again). The run's row is
    locked first, so two schedulers' workers writing notes at once lose no text.

    :return: whether the text was added now (False: the note had it already).
    """
    from airflow.models.dagrun import DagRun
    from sqlalchemy import select

    session.execute(select(DagRun.id).where(DagRun.id == dag_run.id).with_for_update())
    session.refresh(dag_run)
    current = dag_run.note or ""
    added = text not in current
    if added:
        dag_run.note = f"{current}\n{text}".strip() if current else text
    session.commit()
    return added


def _retries_enabled_when_it_ran(session: Session, dag_run: Any) -> bool:
    """Whether the DAG version the run ran with asked for automatic retries."""
    from airflow.models.dagbag import DBDagBag

    try:
        ran_with = DBDagBag().get_dag_for_run(dag_run, session=session)
        return ran_with is not None and settings_for(ran_with).retries > 0
    except ResumeConfigError:
        return False


def schedule_retry(session: Session, dag_id: str, run_id: str) -> RetryDecision | None:
    """
    Decide and, if due, create the automatic retry of a failed run. Commits ``session``.

    :return: the decision, or None when the run is not a candidate (retries off now or when it ran,
        not failed).
    """
    from airflow_resume_provider.resume import KIND_RETRY, load_dag_and_run, resume

    try:
        dag, dag_run = load_dag_and_run(session, dag_id, run_id)
        settings = settings_for(dag)
    except (RunNotFoundError, ResumeConfigError):
        return None
    if not settings.enabled or settings.retries == 0 or dag_run.state != "failed":
        return None
    if not _retries_enabled_when_it_ran(session, dag_run):
        return None
    own = run_record.check_quietly(dag_id, run_id, dag_run.conf).record
    # A full rerun (on_retry: false) needs the run's record in the metadata DB, not its state files.
    facts = gather_facts(
        session, dag, dag_run, full_rerun=not settings.on_retry, rerun_children=settings.rerun_children
    )
    verdict = decide(facts)
    if verdict.resumed_run_id:
        return RetryDecision(False, (own.retry_attempt if own else 0) + 1, "already resumed")
    decision = decide_retry(settings, verdict, own)
    cause = cause_of(verdict.failure) or UNKNOWN
    if not decision.retry:
        # Counted once per failure: the note is written once, also when the sweep decides again.
        if decision.final and append_note(session, dag_run, decision.note):
            metrics.retry_not_retried(cause)
        log.info("Run %s of DAG %s: %s", run_id, dag_id, decision.note)
        return decision

    how = (
        f"resumed from {run_id} at {verdict.failed_task_id}"
        if settings.on_retry
        else f"full rerun of {run_id}"
    )
    outcome = resume(
        session,
        dag_id,
        run_id,
        full_rerun=not settings.on_retry,
        facts=facts,
        user=RETRY_COMPONENT,
        triggered_by="timetable",
        delay_seconds=settings.retry_delay,
        kind=KIND_RETRY,
        retry_attempt=decision.attempt,
        note=f"Automatic retry {decision.attempt} of {settings.retries}: {how}",
        parent_failure=failure_signature(verdict.failure, verdict.failed_task_id),
        # A trigger step's failed child run is resumed with it (or, asked for, rerun in full).
        rerun_children=settings.rerun_children,
    )
    if outcome.created:
        metrics.retry_scheduled(cause)
        _, dag_run = load_dag_and_run(session, dag_id, run_id)
        append_note(
            session,
            dag_run,
            f"Retried automatically as {outcome.dag_run_id} (attempt {decision.attempt} of {settings.retries}).",
        )
        log.info("Run %s of DAG %s failed; retry %s created", run_id, dag_id, outcome.dag_run_id)
    return decision


#: Who automatic retries are recorded as (triggering user of the retry, owner in the audit log).
RETRY_COMPONENT = "airflow-resume-provider (scheduler)"


def sweep(session_factory: Any, decided: set[tuple[str, str]]) -> int:
    """
    Retry recent failed runs that are due one and have none; returns how many were created.

    Reads only failed runs of DAGs tagged as retrying (the DAG policy tags them), so its cost does
    not grow with the failures of other DAGs, and deserializes no other DAG.
    """
    from airflow.models.dag import DagTag
    from airflow.models.dagrun import DagRun
    from sqlalchemy import select

    cutoff = datetime.now(timezone.utc) - timedelta(seconds=conf.retry_sweep_lookback())
    with session_factory() as session:
        rows = session.execute(
            select(DagRun.dag_id, DagRun.run_id)
            .join(DagTag, DagTag.dag_id == DagRun.dag_id)
            .where(DagTag.name == RETRIES_TAG, DagRun.state == "failed", DagRun.end_date >= cutoff)
        ).all()
    created = 0
    for dag_id, run_id in rows:
        if (dag_id, run_id) in decided:
            continue
        decision = handle(session_factory, dag_id, run_id)
        if decision is None or decision.final:
            decided.add((dag_id, run_id))
        if decision is not None and decision.retry:
            created += 1
    return created


def handle(session_factory: Any, dag_id: str, run_id: str) -> RetryDecision | None:
    """:func:`schedule_retry` in its own session; a failure is logged and retried by a later sweep."""
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

"""
Bulk resume: many failed runs of one DAG at once (REST, CLI and the DAG-level Resume tab), with a dry run.

Each run is resumed (or assessed, in a dry run) on its own, with :func:`resume.resume` in its own
transaction, so one run that cannot be resumed, or whose resume fails, never stops the others.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from airflow_resume_provider import compat
from airflow_resume_provider.display import error_summary
from airflow_resume_provider.exceptions import (
    BadRequestError,
    NotResumableError,
    ResumeError,
    RunNotFoundError,
)
from airflow_resume_provider.models import ChildStep, ReasonCode
from airflow_resume_provider.resume import KIND_MANUAL, assess, resume
from airflow_resume_provider.tree import child_steps

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

#: The most runs one bulk request may resume (the REST API answers 422 beyond it).
MAX_RUNS_PER_REQUEST = 100

BulkStatus = Literal["created", "existing", "refused", "would_resume"]


class TooManyRunsError(BadRequestError):
    """The selection holds more runs than one request may resume."""


class BulkResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    dag_run_id: str
    status: BulkStatus = Field(
        description=(
            "created: resumed now; existing: resumed earlier (new_dag_run_id is that run); refused: not "
            "resumable (reason says why); would_resume: a dry run found it resumable."
        )
    )
    new_dag_run_id: str | None = None
    resume_task_id: str | None = Field(default=None, description="The task the resumed run starts at.")
    reason_code: ReasonCode | None = None
    reason: str | None = None
    children: list[ChildStep] = Field(
        default_factory=list,
        description="The child runs the resume point's trigger step triggered, and what happens to each.",
    )


class BulkOutcome(BaseModel):
    model_config = ConfigDict(frozen=True)

    results: list[BulkResult]
    total: int
    dry_run: bool

    @property
    def all_resumed(self) -> bool:
        """No run refused: every one was resumed, already resumed, or (dry run) would be resumed."""
        return all(r.status != "refused" for r in self.results)

    def to_dict(self) -> dict:
        return self.model_dump(mode="json")


def require_dag(session: Session, dag_id: str) -> None:
    """:raises RunNotFoundError: Airflow does not know the DAG."""
    from airflow.models.dag import DagModel
    from sqlalchemy import select

    if session.scalar(select(DagModel.dag_id).where(DagModel.dag_id == dag_id)) is None:
        raise RunNotFoundError(f"DAG {dag_id!r} not found.")


def failed_run_ids(
    session: Session,
    dag_id: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = MAX_RUNS_PER_REQUEST,
) -> list[str]:
    """
    The DAG's failed runs that ended in ``[since, until]``, oldest first.

    :raises TooManyRunsError: more than ``limit`` runs match; the message says how many.
    """
    from airflow.models.dagrun import DagRun
    from airflow.utils.state import DagRunState
    from sqlalchemy import func, select

    since, until = compat.as_utc(since), compat.as_utc(until)
    where = [DagRun.dag_id == dag_id, DagRun.state == DagRunState.FAILED]
    if since is not None:
        where.append(DagRun.end_date >= since)
    if until is not None:
        where.append(DagRun.end_date <= until)
    query = select(DagRun.run_id).where(*where).order_by(DagRun.end_date, DagRun.id)
    if limit is not None:
        run_ids = list(session.scalars(query.limit(limit + 1)))
        if len(run_ids) > limit:
            count = session.scalar(select(func.count()).select_from(DagRun).where(*where))
            raise TooManyRunsError(
                f"DAG {dag_id!r}: {count} failed runs match{_window(since, until)}, more than the "
                f"{limit} one request may resume. Narrow since/until, or list dag_run_ids."
            )
        return run_ids
    return list(session.scalars(query))


def failed_runs_page(
    session: Session, dag_id: str, *, offset: int, limit: int
) -> tuple[list[tuple[str, datetime | None]], int]:
    """One page of the DAG's failed runs, newest first: ``(run_id, end_date)`` pairs and the total."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.state import DagRunState
    from sqlalchemy import func, select

    where = (DagRun.dag_id == dag_id, DagRun.state == DagRunState.FAILED)
    total = session.scalar(select(func.count()).select_from(DagRun).where(*where)) or 0
    rows = session.execute(
        select(DagRun.run_id, DagRun.end_date)
        .where(*where)
        .order_by(DagRun.end_date.desc().nulls_last(), DagRun.id.desc())
        .offset(offset)
        .limit(limit)
    ).all()
    return [(run_id, end_date) for run_id, end_date in rows], total


def _window(since: datetime | None, until: datetime | None) -> str:
    parts = []
    if since is not None:
        parts.append(f"ended at or after {since.isoformat()}")
    if until is not None:
        parts.append(f"at or before {until.isoformat()}")
    return " (" + " and ".join(parts) + ")" if parts else ""


def resume_many(
    session: Session,
    dag_id: str,
    run_ids: list[str],
    *,
    dry_run: bool,
    user: str | None,
    triggered_by: str,
    rerun_children: bool = False,
    may_trigger: Callable[[str], bool] | None = None,
) -> BulkOutcome:
    """Resume (or, with ``dry_run``, assess) each run in turn; duplicates in ``run_ids`` count once."""
    results = [
        _one(
            session,
            dag_id,
            run_id,
            dry_run=dry_run,
            user=user,
            triggered_by=triggered_by,
            rerun_children=rerun_children,
            may_trigger=may_trigger,
        )
        for run_id in dict.fromkeys(run_ids)
    ]
    return BulkOutcome(results=results, total=len(results), dry_run=dry_run)


def _one(
    session: Session,
    dag_id: str,
    run_id: str,
    *,
    dry_run: bool,
    user: str | None,
    triggered_by: str,
    rerun_children: bool,
    may_trigger: Callable[[str], bool] | None,
) -> BulkResult:
    try:
        if dry_run:
            verdict = assess(session, dag_id, run_id, rerun_children=rerun_children)
            children = [entry.child for entry in child_steps(verdict.plan)]
            if verdict.resumed_run_id:
                return BulkResult(
                    dag_run_id=run_id,
                    status="existing",
                    new_dag_run_id=verdict.resumed_run_id,
                    resume_task_id=verdict.resume_task_id,
                )
            if verdict.resumable:
                return BulkResult(
                    dag_run_id=run_id,
                    status="would_resume",
                    resume_task_id=verdict.resume_task_id,
                    children=children,
                )
            return _refused(run_id, verdict.reason_code, verdict.reason, children)
        outcome = resume(
            session,
            dag_id,
            run_id,
            user=user,
            triggered_by=triggered_by,
            kind=KIND_MANUAL,
            rerun_children=rerun_children,
            may_trigger=may_trigger,
        )
        return BulkResult(
            dag_run_id=run_id,
            status="created" if outcome.created else "existing",
            new_dag_run_id=outcome.dag_run_id,
            resume_task_id=outcome.resume_task_id,
        )
    except NotResumableError as err:
        return _refused(
            run_id,
            err.verdict.reason_code,
            err.verdict.reason,
            [entry.child for entry in child_steps(err.verdict.plan)],
        )
    except RunNotFoundError as err:
        return _refused(run_id, ReasonCode.RUN_NOT_FOUND, str(err))
    except Exception as err:
        # One run's failure (a storage outage, a database error) must not stop the others.
        session.rollback()
        if not isinstance(err, ResumeError):
            log.exception("Bulk resume: run %s of DAG %s failed", run_id, dag_id)
        if isinstance(err, ResumeError):
            return _refused(run_id, err.reason_code, str(err))
        return _refused(run_id, ReasonCode.RESUME_FAILED, error_summary(err))


def _refused(
    run_id: str, reason_code: ReasonCode | None, reason: str | None, children: list[ChildStep] | None = None
) -> BulkResult:
    return BulkResult(
        dag_run_id=run_id, status="refused", reason_code=reason_code, reason=reason, children=children or []
    )

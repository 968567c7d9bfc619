"""
Retention: how long a finished run's state is kept, and deleting what is older.

A failed run that ended more than ``[resume] retention_days`` ago is not resumed (``state_expired``),
whether or not its state files still exist. ``airflow resume cleanup`` deletes the state files
(``*.resume.json`` and the ``*.resume-killed.json`` markers beside them) of runs that ended longer ago.

What is deleted is decided from the metadata DB, never by listing the storage: finished runs (success or
failed) that ended before the cutoff, of DAG versions that had resume enabled. A run's state is kept
while a run resumed from it (directly or further down the chain) is inside the window or not finished:
the restored tasks of that run take their state from these files. Each run's files are looked for in its
own folder, the directory its log filename template gives for the run, in every folder state may be kept
in (:func:`airflow_resume_provider.state.storage.roots`). Just before its files are deleted, each run is
read again from the DB: a run cleared and running again, or resumed meanwhile, keeps its state. Only
the files that were listed (and shown) are deleted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from airflow_resume_provider import conf, run_record
from airflow_resume_provider.exceptions import ResumeError
from airflow_resume_provider.manual_kill import KILLED_SUFFIX
from airflow_resume_provider.state import storage
from airflow_resume_provider.state.paths import (
    STATE_SUFFIX,
    StateLocation,
    attempt_state_relpath,
    render_log_relpath,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy.orm import Session

    from airflow_resume_provider.state.paths import StateRoot

#: The names of the files the provider keeps per task attempt; nothing else is ever deleted.
STATE_FILE_SUFFIXES = (STATE_SUFFIX, KILLED_SUFFIX)
#: Run states whose end is final; queued and running runs are never touched.
FINISHED_STATES = ("success", "failed")


# --- expiry (pure) ----------------------------------------------------------------------------------


def expires_on(end_date: datetime, days: int) -> datetime:
    return end_date + timedelta(days=days)


def expired_reason(where: str, end_date: datetime | None, days: int, now: datetime) -> str | None:
    """Why a run that ended at ``end_date`` is past its retention of ``days`` days (0: forever), or None."""
    if days <= 0 or end_date is None:
        return None
    expiry = expires_on(_aware(end_date), days)
    if expiry > now:
        return None
    return (
        f"{where}: its state expired on {expiry:%Y-%m-%d %H:%M} UTC, {days} days after the run ended "
        f"([resume] retention_days = {days}); its state files may have been deleted, so it is not resumed. "
        "Trigger a new run instead."
    )


def state_expired(where: str, end_date: datetime | None) -> str | None:
    """:func:`expired_reason` under ``[resume] retention_days``, now. Reads no state file."""
    try:
        days = conf.retention_days()
    except ValueError as err:
        raise ResumeError(f"{where}: cannot tell whether its state expired: {err}.") from None
    return expired_reason(where, end_date, days, datetime.now(timezone.utc))


# --- where a run's files are (pure) -----------------------------------------------------------------


class _Slot:
    """Rendered where a template puts a value: text no id can hold (ids never contain NUL)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text

    def __format__(self, spec: str) -> str:
        return self.text


_DAG, _RUN, _TASK, _TRY = "\0dag\0", "\0run\0", "\0task\0", "\0try\0"


def _render(template: str, dag_id: str, run_id: str) -> str:
    return render_log_relpath(
        template,
        dag_id=dag_id,
        run_id=run_id,
        task_id=_TASK,
        map_index=-1,
        try_number=_Slot(_TRY),  # type: ignore[arg-type]
    )


def _folder_before_task(rendered: str) -> str:
    """The directory part of ``rendered`` before the first task- or try-specific text ("" if none)."""
    cuts = [i for i in (rendered.find(_TASK), rendered.find(_TRY)) if i >= 0]
    head = rendered[: min(cuts)] if cuts else ""
    return head[: head.rfind("/") + 1]


def run_folder_relpath(template: str, dag_id: str, run_id: str) -> str | None:
    """
    The folder (relative, ending in ``/``) that ``template`` puts every file of one run in, and no file
    of another run or DAG; None when the template has no such folder (e.g. ``<dag>/<task>/<run>/...``).
    """
    try:
        probe = _folder_before_task(_render(template, _DAG, _RUN))
        if _DAG not in probe or _RUN not in probe:
            return None
        folder = _folder_before_task(_render(template, dag_id, run_id))
    except ValueError:  # a template the state path cannot be built from laid out no state file
        return None
    folder = folder.lstrip("/")
    return folder if folder and "\0" not in folder else None


def attempt_relpaths(template: str, dag_id: str, run_id: str, task_id: str, map_index: int, tries: int):
    """The state file and kill marker of each try ``1..tries`` of one task, relative to the state folder."""
    for try_number in range(1, tries + 1):
        rel = attempt_state_relpath(
            template,
            dag_id=dag_id,
            run_id=run_id,
            task_id=task_id,
            map_index=map_index,
            try_number=try_number,
        )
        yield rel
        yield rel[: -len(STATE_SUFFIX)] + KILLED_SUFFIX


def is_state_file(name: str) -> bool:
    return name.endswith(STATE_FILE_SUFFIXES)


def human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size} bytes" if unit == "bytes" else f"{value:.1f} {unit} ({size} bytes)"
        value /= 1024
    return f"{size} bytes"  # pragma: no cover


# --- what a cleanup finds ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StateFile:
    location: StateLocation
    size: int


@dataclass
class ExpiredRun:
    """A finished run that ended before the cutoff, and its state files."""

    dag_id: str
    run_id: str
    end_date: datetime
    template: str
    files: list[StateFile] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dag_id": self.dag_id,
            "run_id": self.run_id,
            "end_date": self.end_date.isoformat(),
            "files": len(self.files),
            "bytes": self.size,
        }


@dataclass
class Cleanup:
    """What ``airflow resume cleanup`` found (a plan) or deleted (after :func:`delete_state`)."""

    older_than_days: int
    cutoff: datetime
    dag_id: str | None
    runs: list[ExpiredRun] = field(default_factory=list)
    #: ``(dag_id, run_id, why)`` of old runs whose state is kept.
    kept: list[tuple[str, str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    deleted: bool = False

    @property
    def files(self) -> int:
        return sum(len(r.files) for r in self.runs)

    @property
    def size(self) -> int:
        return sum(r.size for r in self.runs)

    def to_dict(self, *, dry_run: bool) -> dict[str, Any]:
        return {
            "dry_run": dry_run,
            "deleted": self.deleted,
            "older_than_days": self.older_than_days,
            "cutoff": self.cutoff.isoformat(),
            "dag_id": self.dag_id,
            "files": self.files,
            "bytes": self.size,
            "runs": [r.to_dict() for r in self.runs if r.files],
            "kept": [{"dag_id": d, "run_id": r, "reason": why} for d, r, why in self.kept],
            "errors": list(self.errors),
        }

    def runs_text(self) -> str:
        """Which runs, in words: "runs of ... that ended before ... (more than N days ago)"."""
        scope = f"DAG {self.dag_id!r}" if self.dag_id else "DAGs with resume enabled"
        return (
            f"runs of {scope} that ended before {self.cutoff:%Y-%m-%d %H:%M} UTC "
            f"(more than {self.older_than_days} days ago)"
        )

    def summary(self) -> str:
        with_files = sum(1 for r in self.runs if r.files)
        return f"{self.files} state files, {human_bytes(self.size)}, of {with_files} {self.runs_text()}"


def _local_file(path: str) -> StateFile | None:
    try:
        stat = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return StateFile(StateLocation(url="file://" + path), stat.st_size)


def list_folder(folder: StateLocation) -> list[StateFile]:
    """The state files anywhere under ``folder`` (a run's folder); nothing else."""
    found: list[StateFile] = []
    if folder.is_local:
        for directory, _, names in os.walk(folder.local_path):
            for name in sorted(names):
                if is_state_file(name) and (file := _local_file(os.path.join(directory, name))):
                    found.append(file)
        return found
    handle = storage.object_path(folder)
    base = str(handle.path).rstrip("/")
    for name, info in sorted(handle.fs.find(base, detail=True).items()):
        if not name.startswith(base + "/") or not is_state_file(name):
            continue
        location = StateLocation(url=f"{folder.url}/{name[len(base) + 1 :]}", conn_id=folder.conn_id)
        found.append(StateFile(location, int(info.get("size") or 0)))
    return found


def list_files(locations: list[StateLocation]) -> list[StateFile]:
    """Those of ``locations`` that exist, with their size and time."""
    found: list[StateFile] = []
    for location in locations:
        if location.is_local:
            if file := _local_file(location.local_path):
                found.append(file)
            continue
        handle = storage.object_path(location)
        try:
            info = handle.fs.info(str(handle.path))
        except FileNotFoundError:
            continue
        found.append(StateFile(location, int(info.get("size") or 0)))
    return found


# --- selecting runs from the metadata DB ------------------------------------------------------------


@dataclass(frozen=True)
class _Row:
    dag_id: str
    run_id: str
    end_date: datetime
    version_id: Any
    log_template_id: int | None
    conf: Any


def _aware(value: datetime) -> datetime:
    """``value`` in UTC; a naive value is read as UTC (how Airflow stores dates)."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _old_runs(session: Session, cutoff: datetime, dag_id: str | None) -> list[_Row]:
    from airflow.models.dagrun import DagRun
    from sqlalchemy import select

    query = select(
        DagRun.dag_id,
        DagRun.run_id,
        DagRun.end_date,
        DagRun.created_dag_version_id,
        DagRun.log_template_id,
        DagRun.conf,
    ).where(DagRun.end_date < cutoff, DagRun.state.in_(FINISHED_STATES))
    if dag_id:
        query = query.where(DagRun.dag_id == dag_id)
    return [
        _Row(d, r, _aware(e), v, t, c)
        for d, r, e, v, t, c in session.execute(query.order_by(DagRun.dag_id, DagRun.end_date))
    ]


def _resume_was_enabled(session: Session, rows: list[_Row]) -> Callable[[_Row], bool]:
    """Whether the DAG version each run was created with had resume enabled (else: nothing was captured)."""
    from airflow.models.dagbag import DBDagBag

    from airflow_resume_provider.compat import dag_of_version
    from airflow_resume_provider.settings import settings_for

    bag = DBDagBag()
    enabled: dict[tuple[str, Any], bool] = {}
    for row in rows:
        key = (row.dag_id, row.version_id)
        if key in enabled:
            continue
        try:
            dag = dag_of_version(bag, row.version_id, session=session) if row.version_id else None
            dag = dag or bag.get_latest_version_of_dag(row.dag_id, session=session)
            enabled[key] = dag is not None and settings_for(dag).enabled
        except Exception:  # an invalid resume param: the DAG was an import error, nothing was captured
            enabled[key] = False
    return lambda row: enabled[(row.dag_id, row.version_id)]


def _root(dag_id: str, run_id: str, run_conf: Any) -> str:
    found = run_record.check_quietly(dag_id, run_id, run_conf).record
    return found.root_run_id if found is not None else run_id


def _chains_in_use(session: Session, dag_ids: set[str], cutoff: datetime) -> set[tuple[str, str]]:
    """``(dag_id, root run)`` of every chain of resumed runs with a run inside the window or not finished."""
    from airflow.models.dagrun import DagRun
    from sqlalchemy import or_, select

    if not dag_ids:
        return set()
    rows = session.execute(
        select(DagRun.dag_id, DagRun.run_id, DagRun.conf).where(
            DagRun.dag_id.in_(sorted(dag_ids)),
            DagRun.run_id.startswith(run_record.RESUME_RUN_PREFIX, autoescape=True),
            or_(DagRun.end_date.is_(None), DagRun.end_date >= cutoff, DagRun.state.not_in(FINISHED_STATES)),
        )
    )
    return {(dag_id, _root(dag_id, run_id, run_conf)) for dag_id, run_id, run_conf in rows}


def _still_old(session: Session, run: ExpiredRun, cutoff: datetime) -> str | None:
    """Why ``run``'s state must be kept after all (read again now), or None."""
    from airflow.models.dagrun import DagRun
    from sqlalchemy import select

    row = session.execute(
        select(DagRun.state, DagRun.end_date, DagRun.conf).where(
            DagRun.dag_id == run.dag_id, DagRun.run_id == run.run_id
        )
    ).first()
    if row is None:
        return None  # the run was deleted meanwhile: nothing can use its state any more
    state, end_date, run_conf = row
    if state not in FINISHED_STATES or end_date is None or _aware(end_date) >= cutoff:
        return f"the run is {state} again (cleared or rerun) since it was listed"
    root = _root(run.dag_id, run.run_id, run_conf)
    if (run.dag_id, root) in _chains_in_use(session, {run.dag_id}, cutoff):
        return f"a run resumed from it (chain of run {root!r}) was created since it was listed"
    return None


def _templates(session: Session) -> dict[int | None, str]:
    """Every log filename template by id; None (runs from before templates were recorded): the first."""
    from airflow.models.tasklog import LogTemplate
    from sqlalchemy import select

    templates: dict[int | None, str] = {}
    for template_id, filename in session.execute(
        select(LogTemplate.id, LogTemplate.filename).order_by(LogTemplate.id)
    ):
        templates.setdefault(None, filename)
        templates[template_id] = filename
    return templates


def _attempts(session: Session, dag_id: str, run_id: str) -> list[tuple[str, int, int]]:
    from airflow.models.taskinstance import TaskInstance
    from sqlalchemy import select

    return [
        (task_id, map_index, try_number or 0)
        for task_id, map_index, try_number in session.execute(
            select(TaskInstance.task_id, TaskInstance.map_index, TaskInstance.try_number).where(
                TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id
            )
        )
    ]


def _run_files(
    session: Session, run: ExpiredRun, roots: list[StateRoot]
) -> tuple[list[StateFile], list[str]]:
    """The run's state files in every root, and a text per root that could not be listed."""
    folder = run_folder_relpath(run.template, run.dag_id, run.run_id)
    attempts = [] if folder is not None else _attempts(session, run.dag_id, run.run_id)
    files: list[StateFile] = []
    errors: list[str] = []
    for root in roots:
        if storage.folder_problem(root.url):
            continue  # a log backend without files (CloudWatch, ...): no state was kept there
        try:
            if folder is not None:
                found = list_folder(
                    StateLocation(url=f"{root.url}/{folder.rstrip('/')}", conn_id=root.conn_id)
                )
            else:
                found = list_files(
                    [
                        StateLocation(url=f"{root.url}/{rel}", conn_id=root.conn_id)
                        for task_id, map_index, tries in attempts
                        for rel in attempt_relpaths(
                            run.template, run.dag_id, run.run_id, task_id, map_index, tries
                        )
                    ]
                )
        except Exception as err:
            errors.append(
                f"DAG {run.dag_id!r}, run {run.run_id!r}: could not list its state in {root.url}: "
                f"{type(err).__name__}: {err}"
            )
            continue
        files.extend(found)
    return files, errors


def plan(
    session: Session, older_than_days: int, *, dag_id: str | None = None, now: datetime | None = None
) -> Cleanup:
    """
    The state files of finished runs that ended more than ``older_than_days`` days ago (> 0), of DAG
    versions that had resume enabled, except those of chains of resumed runs still in use.
    """
    if older_than_days <= 0:
        raise ValueError("older_than_days must be greater than 0: 0 would delete the state of every run")
    now = now or datetime.now(timezone.utc)
    result = Cleanup(older_than_days, now - timedelta(days=older_than_days), dag_id)
    rows = _old_runs(session, result.cutoff, dag_id)
    enabled = _resume_was_enabled(session, rows)
    rows = [row for row in rows if enabled(row)]
    in_use = _chains_in_use(session, {row.dag_id for row in rows}, result.cutoff)
    templates = _templates(session)
    current = conf.log_filename_template()
    roots = storage.roots()
    for row in rows:
        root = _root(row.dag_id, row.run_id, row.conf)
        if (row.dag_id, root) in in_use:
            result.kept.append(
                (
                    row.dag_id,
                    row.run_id,
                    f"a run resumed from it (chain of run {root!r}) ended after the cutoff or has not "
                    "finished, and its restored tasks use this state",
                )
            )
            continue
        run = ExpiredRun(row.dag_id, row.run_id, row.end_date, templates.get(row.log_template_id, current))
        run.files, errors = _run_files(session, run, roots)
        result.errors.extend(errors)
        result.runs.append(run)
    return result


def delete_state(session_factory: Callable[[], Any], planned: Cleanup) -> Cleanup:
    """
    Delete the state files :func:`plan` listed (and nothing else), run by run, each run read again just
    before: one no longer finished or ended before the cutoff, or resumed meanwhile, keeps its state.
    Returns what was deleted.
    """
    done = Cleanup(planned.older_than_days, planned.cutoff, planned.dag_id, kept=list(planned.kept))
    done.errors = list(planned.errors)
    for run in planned.runs:
        if not run.files:
            continue
        with session_factory() as session:
            keep = _still_old(session, run, planned.cutoff)
        if keep:
            done.kept.append((run.dag_id, run.run_id, keep))
            continue
        deleted = ExpiredRun(run.dag_id, run.run_id, run.end_date, run.template)
        for file in run.files:
            try:
                storage.delete(file.location)
            except Exception as err:
                done.errors.append(f"could not delete {file.location.url}: {type(err).__name__}: {err}")
                continue
            deleted.files.append(file)
        done.runs.append(deleted)
    done.deleted = True
    return done

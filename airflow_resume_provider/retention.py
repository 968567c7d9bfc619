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
the files that were listed (and shown) are deleted, and only regular files inside those folders: a
symbolic link below a folder is never followed, nor deleted.

Bounded at any number of runs: runs are read :data:`BATCH_SIZE` at a time (keyset pagination on the
primary key, so each page continues where the last one stopped instead of sorting every run again; only
the columns needed, the conf only of runs shaped like resumed runs), each DAG version is deserialized at
most once and only its answer is kept, and only runs with state files are held until the end.
"""

from __future__ import annotations

import errno
import functools
import os
import stat
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from airflow_resume_provider import compat, conf, run_record
from airflow_resume_provider.display import error_summary
from airflow_resume_provider.persisted import KILLED_SUFFIX, RESUME_RUN_PREFIX, STATE_SUFFIX
from airflow_resume_provider.state import storage
from airflow_resume_provider.state.paths import (
    StateLocation,
    attempt_state_relpath,
    relative_to_roots,
    render_log_relpath,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from sqlalchemy.orm import Session

    from airflow_resume_provider.state.paths import StateRoot

#: The names of the files the provider keeps per task attempt; nothing else is ever deleted.
STATE_FILE_SUFFIXES = (STATE_SUFFIX, KILLED_SUFFIX)
#: Run states whose end is final; queued and running runs are never touched.
FINISHED_STATES = ("success", "failed")
#: Runs read from the metadata DB per query (a few MB of rows; fewer queries, each of which sorts the rest).
BATCH_SIZE = 5000
#: How old the list of chains of resumed runs still in use may be when a run's files are deleted.
CHAINS_REFRESH_SECONDS = 1.0


# --- expiry (pure) ----------------------------------------------------------------------------------


def expires_on(end_date: datetime, days: int) -> datetime:
    return end_date + timedelta(days=days)


def expired_reason(where: str, end_date: datetime | None, days: int, now: datetime) -> str | None:
    """Why a run that ended at ``end_date`` is past its retention of ``days`` days (0: forever), or None."""
    if days <= 0 or end_date is None:
        return None
    expiry = expires_on(compat.as_utc(end_date), days)
    if expiry > now:
        return None
    return (
        f"{where}: its state expired on {expiry:%Y-%m-%d %H:%M} UTC, {days} days after the run ended "
        f"([resume] retention_days = {days}); its state files may have been deleted, so it is not resumed. "
        "Trigger a new run instead."
    )


def state_expired(where: str, end_date: datetime | None) -> str | None:
    """:func:`expired_reason` under ``[resume] retention_days``, now. Reads no state file."""
    return expired_reason(where, end_date, conf.retention_days(), datetime.now(timezone.utc))


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


@functools.lru_cache(maxsize=64)
def _has_run_folder(template: str) -> bool:
    probe = _folder_before_task(_render(template, _DAG, _RUN))
    return _DAG in probe and _RUN in probe


def run_folder_relpath(template: str, dag_id: str, run_id: str) -> str | None:
    """
    The folder (relative, ending in ``/``) that ``template`` puts every file of one run in, and no file
    of another run or DAG; None when the template has no such folder (e.g. ``<dag>/<task>/<run>/...``).
    """
    try:
        if not _has_run_folder(template):
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


@dataclass(frozen=True, slots=True)
class StateFile:
    location: StateLocation
    size: int


@dataclass(slots=True)
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


class LinkNotFollowed(Exception):
    """A path below a state or log folder passes through a symbolic link: cleanup does not follow it."""


def _link_below(root: str, path: str) -> str | None:
    """
    The first part of ``path`` below the folder ``root`` that is a symbolic link (relative to ``root``),
    or None. ``root`` itself may be a link (a configured folder); a path outside it counts as one.
    """
    root = root.rstrip(os.sep)
    rel = path[len(root) + 1 :] if path.startswith(root + os.sep) else os.path.relpath(path, root)
    if rel in ("", os.curdir):
        return None
    if os.pardir in rel.split(os.sep):
        return rel
    current = root
    for part in rel.split(os.sep):
        current = os.path.join(current, part)
        if os.path.islink(current):
            return os.path.relpath(current, root)
    return None


def _local_file(path: str) -> StateFile | None:
    """The regular file at ``path`` (a symbolic link is not one), or None."""
    try:
        info = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    return StateFile(StateLocation(url="file://" + path), info.st_size)


def list_folder(folder: StateLocation, root: str | None = None) -> list[StateFile]:
    """
    The state files anywhere under ``folder`` (a run's folder); nothing else. Locally only regular files,
    and no symbolic link is followed: one on the way from ``root`` (the local state or log folder it
    lies in) to ``folder`` raises :class:`LinkNotFollowed`.
    """
    found: list[StateFile] = []
    if folder.is_local:
        top = folder.local_path
        try:
            os.lstat(top)
        except (FileNotFoundError, NotADirectoryError):
            return found  # most old runs: one call, no walk
        if root is not None and (link := _link_below(root, top)):
            raise LinkNotFollowed(
                f"{link} is a symbolic link; it is not followed and nothing under it is deleted"
            )
        for directory, _, names in os.walk(top):  # does not descend into linked folders
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


def list_files(locations: list[StateLocation], root: str | None = None) -> list[StateFile]:
    """
    Those of ``locations`` that exist, with their size. Locally only regular files reached from ``root``
    (the local folder they lie in) without a symbolic link.
    """
    found: list[StateFile] = []
    for location in locations:
        if location.is_local:
            path = location.local_path
            if root is not None and _link_below(root, os.path.dirname(path)):
                continue
            if file := _local_file(path):
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


def _old_runs(session: Session, cutoff: datetime, dag_id: str | None) -> Iterator[_Row]:
    """
    Finished runs that ended before ``cutoff``, in the order they were created, :data:`BATCH_SIZE` per
    query. The pages follow the primary key: Airflow has no index on the end date, so ordering by it
    would sort every run again for each page (quadratic in the history). The conf is read only of runs
    shaped like resumed runs: only a resumed run carries a signed record of its chain (see
    :func:`_root`).
    """
    from airflow.models.dagrun import DagRun
    from sqlalchemy import case, select

    resumed = DagRun.run_id.startswith(RESUME_RUN_PREFIX, autoescape=True)
    query = select(
        DagRun.id,
        DagRun.dag_id,
        DagRun.end_date,
        DagRun.run_id,
        DagRun.created_dag_version_id,
        DagRun.log_template_id,
        case((resumed, DagRun.conf), else_=None),
    ).where(DagRun.end_date < cutoff, DagRun.state.in_(FINISHED_STATES))
    if dag_id:
        query = query.where(DagRun.dag_id == dag_id)
    query = query.order_by(DagRun.id).limit(BATCH_SIZE)
    after: int | None = None
    while True:
        rows = session.execute(query if after is None else query.where(DagRun.id > after)).all()
        for _, d, e, r, v, t, c in rows:
            yield _Row(d, r, compat.as_utc(e), v, t, c)
        if len(rows) < BATCH_SIZE:
            return
        after = rows[-1][0]


class _ResumeWasEnabled:
    """
    Whether the DAG version a run was created with had resume enabled (else: nothing was captured).
    Each version is deserialized at most once, and only the answer is kept.
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        self.known: dict[tuple[str, Any], bool] = {}

    def __call__(self, row: _Row) -> bool:
        key = (row.dag_id, row.version_id)
        if key not in self.known:
            self.known[key] = self._read(row.dag_id, row.version_id)
        return self.known[key]

    def _read(self, dag_id: str, version_id: Any) -> bool:
        from airflow.models.dagbag import DBDagBag

        from airflow_resume_provider.compat import dag_of_version
        from airflow_resume_provider.resume_param import settings_for

        bag = DBDagBag()  # one per version: a bag keeps every DAG it read, this one is dropped at once
        try:
            dag = dag_of_version(bag, version_id, session=self.session) if version_id else None
            dag = dag or bag.get_latest_version_of_dag(dag_id, session=self.session)
            return dag is not None and settings_for(dag).enabled
        except Exception:  # an invalid resume param: the DAG was an import error, nothing was captured
            return False


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
            DagRun.run_id.startswith(RESUME_RUN_PREFIX, autoescape=True),
            or_(DagRun.end_date.is_(None), DagRun.end_date >= cutoff, DagRun.state.not_in(FINISHED_STATES)),
        )
    )
    return {(dag_id, _root(dag_id, run_id, run_conf)) for dag_id, run_id, run_conf in rows}


class _ChainsInUse:
    """
    :func:`_chains_in_use` per DAG, read again when older than ``max_age`` seconds (one
    query per DAG and second while deleting, not one per run: the query reads every resumed run of the
    DAG).
    """

    def __init__(self, cutoff: datetime, max_age: float) -> None:
        self.cutoff = cutoff
        self.max_age = max_age
        self.read: dict[str, tuple[float, set[str]]] = {}

    def roots(self, session: Session, dag_id: str) -> set[str]:
        now = time.monotonic()
        known = self.read.get(dag_id)
        if known is None or now - known[0] > self.max_age:
            roots = {root for _, root in _chains_in_use(session, {dag_id}, self.cutoff)}
            self.read[dag_id] = (now, roots)  # small: the roots of chains with a recent or unfinished run
            return roots
        return known[1]


def _still_old(session: Session, run: ExpiredRun, cutoff: datetime, chains: _ChainsInUse) -> str | None:
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
    if state not in FINISHED_STATES or end_date is None or compat.as_utc(end_date) >= cutoff:
        return f"the run is {state} again (cleared or rerun) since it was listed"
    root = _root(run.dag_id, run.run_id, run_conf)
    if root in chains.roots(session, run.dag_id):
        return f"a run resumed from it (chain of run {root!r}) was created since it was listed"
    return None


def _templates(session: Session) -> dict[int | None, str]:
    """Every log filename template by id; None (runs from before templates were recorded): the first."""
    templates: dict[int | None, str] = {}
    for template_id, filename in compat.log_templates(session):
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
        local_root = StateLocation(url=root.url).local_path if root.url.startswith("file://") else None
        try:
            if folder is not None:
                found = list_folder(
                    StateLocation(url=f"{root.url}/{folder.rstrip('/')}", conn_id=root.conn_id), local_root
                )
            else:
                found = list_files(
                    [
                        StateLocation(url=f"{root.url}/{rel}", conn_id=root.conn_id)
                        for task_id, map_index, tries in attempts
                        for rel in attempt_relpaths(
                            run.template, run.dag_id, run.run_id, task_id, map_index, tries
                        )
                    ],
                    local_root,
                )
        except Exception as err:
            errors.append(
                f"DAG {run.dag_id!r}, run {run.run_id!r}: could not list its state in one of the state "
                f"folders: {error_summary(err, [root.url])}"
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
    try:
        cutoff = cutoff_for(older_than_days, now)
    except OverflowError:
        raise ValueError(
            f"older_than_days {older_than_days} is too large: no date is that long ago"
        ) from None
    result = Cleanup(older_than_days, cutoff, dag_id)
    enabled = _ResumeWasEnabled(session)
    chains = _ChainsInUse(result.cutoff, max_age=float("inf"))  # one read per DAG while listing
    templates = _templates(session)
    current = conf.log_filename_template()
    roots = storage.roots()
    for row in _old_runs(session, result.cutoff, dag_id):
        if not enabled(row):
            continue
        root = _root(row.dag_id, row.run_id, row.conf)
        if root in chains.roots(session, row.dag_id):
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
        if run.files:  # a run without files has nothing to show or delete: not kept in memory
            result.runs.append(run)
    # Shown and deleted DAG by DAG, oldest first.
    result.runs.sort(key=lambda run: (run.dag_id, run.end_date, run.run_id))
    result.kept.sort()
    return result


def delete_state(session_factory: Callable[[], Any], planned: Cleanup) -> Cleanup:
    """
    Delete the state files :func:`plan` listed (and nothing else), run by run, each run read again just
    before: one no longer finished or ended before the cutoff, or resumed meanwhile, keeps its state
    (the DAG's chains of resumed runs in use are read at most :data:`CHAINS_REFRESH_SECONDS` before).
    Local files are deleted only as regular files reached without following a symbolic link.
    Returns what was deleted.
    """
    done = Cleanup(planned.older_than_days, planned.cutoff, planned.dag_id, kept=list(planned.kept))
    done.errors = list(planned.errors)
    chains = _ChainsInUse(planned.cutoff, max_age=CHAINS_REFRESH_SECONDS)
    local_roots = [r.url for r in storage.roots() if r.url.startswith("file://")]
    with session_factory() as session:
        for run in planned.runs:
            if run.files:
                _delete_run(session, run, planned.cutoff, chains, local_roots, done)
    done.deleted = True
    return done


def _delete_run(
    session: Session,
    run: ExpiredRun,
    cutoff: datetime,
    chains: _ChainsInUse,
    local_roots: list[str],
    done: Cleanup,
) -> None:
    keep = _still_old(session, run, cutoff, chains)
    session.commit()  # end the read: the next run is read afresh, and no lock is held while deleting
    if keep:
        done.kept.append((run.dag_id, run.run_id, keep))
        return
    deleted = ExpiredRun(run.dag_id, run.run_id, run.end_date, run.template)
    for file in run.files:
        try:
            if file.location.is_local:
                _delete_local(file.location.url, local_roots)
            else:
                storage.delete(file.location)
        except Exception as err:
            roots = storage.roots()
            shown = relative_to_roots(file.location.url, roots)
            done.errors.append(f"could not delete {shown}: {error_summary(err, [r.url for r in roots])}")
            continue
        deleted.files.append(file)
    done.runs.append(deleted)


def cutoff_for(older_than_days: int, now: datetime | None = None) -> datetime:
    """When runs must have ended to be cleaned up; OverflowError when no date is that long ago."""
    return (now or datetime.now(timezone.utc)) - timedelta(days=older_than_days)


def _delete_local(url: str, root_urls: list[str]) -> None:
    """
    Delete the regular file at ``url`` inside the deepest of ``root_urls`` it lies in, reaching it folder
    by folder without following a symbolic link (``O_NOFOLLOW``), so a folder swapped for a link after
    it was listed is not followed either. A missing file is fine.
    """
    roots = [r for r in root_urls if url.startswith(r.rstrip("/") + "/")]
    if not roots:
        raise LinkNotFollowed("it is not inside a state or log folder")
    root = max(roots, key=len).rstrip("/")
    parts = url[len(root) + 1 :].split("/")
    if any(part in ("", os.curdir, os.pardir) for part in parts):
        raise LinkNotFollowed("its path is not a plain path inside the folder")
    try:
        folder = os.open(root[len("file://") :], os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        return
    try:
        for depth, part in enumerate(parts[:-1], start=1):
            try:
                inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=folder)
            except FileNotFoundError:
                return
            except OSError as err:
                if err.errno in (errno.ELOOP, errno.ENOTDIR):  # a link (O_NOFOLLOW) or a file
                    where = "/".join(parts[:depth])
                    raise LinkNotFollowed(
                        f"{where} is a symbolic link or not a folder; not followed"
                    ) from None
                raise
            os.close(folder)
            folder = inner
        try:
            info = os.stat(parts[-1], dir_fd=folder, follow_symlinks=False)
        except FileNotFoundError:
            return
        if not stat.S_ISREG(info.st_mode):
            raise LinkNotFollowed("it is not a regular file (a symbolic link?); not deleted")
        os.unlink(parts[-1], dir_fd=folder)
    finally:
        os.close(folder)

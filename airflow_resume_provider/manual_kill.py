"""
Manual kills: a task instance set to failed by a person (UI, REST) is never resumable.

The API server's listener (called by Airflow only once it did set the state) leaves a marker file
beside the task attempt's state file. The marker is signed like a state file (HMAC with ``[resume]
signing_key``) and names the attempt it was written for; a marker that does not verify, cannot be
read or names another attempt is ignored (the verdict warns about the first two), so someone who can
write the storage but has no key cannot block a resume. Airflow's audit log is the second source, see
:func:`airflow_resume_provider.facts.manual_kill_from_audit_log`.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Any

from airflow_resume_provider import background, compat, conf
from airflow_resume_provider.exceptions import StateError
from airflow_resume_provider.guard import API_SERVER, never_raises
from airflow_resume_provider.persisted import KILLED_SUFFIX, STATE_SUFFIX
from airflow_resume_provider.state import integrity, storage
from airflow_resume_provider.state.paths import StateLocation

log = logging.getLogger(__name__)

#: The attempt a marker is bound to: it counts only for this very attempt.
IDENTITY_KEYS = ("dag_id", "run_id", "task_id", "map_index", "try_number")
MARKER_VERSION = 1


def marker_location(state: StateLocation) -> StateLocation:
    return StateLocation(url=state.url[: -len(STATE_SUFFIX)] + KILLED_SUFFIX, conn_id=state.conn_id)


def encode_marker(identity: dict[str, Any], message: str, at: str, key: bytes) -> bytes:
    """A marker's content: the attempt, Airflow's message and the time, with an integrity block."""
    document: dict[str, Any] = {"marker_version": MARKER_VERSION, **identity, "message": message, "at": at}
    document[integrity.INTEGRITY_KEY] = integrity.compute(document, key)
    return json.dumps(document).encode()


def _ignored(why: str) -> str:
    return f"{why} It is ignored: only a marker this provider wrote for the failed attempt stops a resume."


def killed_marker(state: StateLocation, identity: dict[str, Any]) -> tuple[str | None, str | None]:
    """
    The marker beside the attempt's state file: ``(why the attempt counts as set to failed by hand,
    None)`` when a valid marker of exactly this attempt (``identity``, keys :data:`IDENTITY_KEYS`)
    exists; ``(None, warning)`` when a marker is there but ignored; ``(None, None)`` otherwise.

    :raises ProviderConfigError: ``[resume] signing_key`` is set but unusable.
    """
    location = marker_location(state)
    shown = storage.shown(location.url)
    try:
        data = storage.read_bytes(location, where=shown)
    except StateError as err:
        return None, _ignored(f"Kill marker {shown} could not be read ({err}).")
    if data is None:
        return None, None
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        document = None
    if not isinstance(document, dict):
        return None, _ignored(f"Kill marker {shown} does not hold a JSON object.")
    key = conf.signing_key()
    # A marker of an earlier release has no integrity block; without a key it is taken as it is.
    if key or integrity.INTEGRITY_KEY in document:
        try:
            integrity.verify(document, key, where=shown, what="Kill marker")
        except StateError as err:
            return None, _ignored(str(err))
    found = {k: document.get(k) for k in IDENTITY_KEYS}
    if found != {k: identity[k] for k in IDENTITY_KEYS}:
        if {**found, "try_number": identity["try_number"]} == {k: identity[k] for k in IDENTITY_KEYS}:
            return None, None  # an earlier try was set to failed (e.g. before it ran), then cleared
        return None, _ignored(f"Kill marker {shown} was written for another task attempt.")
    return (
        f"DAG {identity['dag_id']!r}, run {identity['run_id']!r}: task {identity['task_id']!r} was set "
        f"to failed by hand ({document.get('message') or 'manually set to failed'}, at {document.get('at')}); "
        "a run stopped on purpose is never resumed. Trigger a new run instead."
    ), None


def _resume_enabled(dag_id: str, session: Any) -> bool:
    from airflow.models.dagbag import DBDagBag

    from airflow_resume_provider.resume_param import settings_for

    dag = DBDagBag().get_latest_version_of_dag(dag_id, session=session)
    try:
        return dag is not None and settings_for(dag).enabled
    except Exception:
        return False


@never_raises("Recording the manual failure (the audit log still has it)", API_SERVER)
def _write_marker(identity: dict[str, Any], message: str) -> None:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session(scoped=False) as session:
        if not _resume_enabled(identity["dag_id"], session):
            return
        dag_run = session.scalar(
            select(DagRun).where(DagRun.dag_id == identity["dag_id"], DagRun.run_id == identity["run_id"])
        )
        template = dag_run.get_log_template(session=session).filename if dag_run is not None else None
    state = storage.location_for(
        dag_id=identity["dag_id"],
        run_id=identity["run_id"],
        task_id=identity["task_id"],
        map_index=identity["map_index"],
        try_number=max(identity["try_number"] or 1, 1),
        template=template,
    )
    data = encode_marker(identity, message, datetime.now(timezone.utc).isoformat(), conf.signing_key())
    target = marker_location(state)
    try:
        storage.write_bytes(storage.prepare(target), data)
    except Exception as err:
        log.warning(
            "Could not record the manual failure at %s (%s); the audit log still has it.",
            storage.shown(target.url),
            storage.describe_error(err),
        )


def record_manual_failure(ti: Any, message: str) -> None:
    """
    Write the marker for an ORM task instance set to failed by hand. Returns at once: the DAG lookup
    and the write happen on the bounded background pool, so the API request is never held up.
    """
    if not compat.set_by_hand(message):
        return
    identity = {
        "dag_id": ti.dag_id,
        "run_id": ti.run_id,
        "task_id": ti.task_id,
        "map_index": -1 if ti.map_index is None else ti.map_index,
        "try_number": ti.try_number,
    }

    background.submit(lambda: _write_marker(identity, str(message)))

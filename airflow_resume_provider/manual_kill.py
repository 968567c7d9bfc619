"""
Manual kills: a task instance set to failed by a person (UI, REST) is never resumable.

The verdict checks Airflow's audit log. In addition, the API server's listener (the process where
"mark as failed" happens) leaves a marker file beside the task attempt's state file, so the fact
survives an audit log that was trimmed or filtered.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Any

from airflow_resume_provider import background
from airflow_resume_provider.guard import API_SERVER, never_raises
from airflow_resume_provider.state import storage
from airflow_resume_provider.state.paths import STATE_SUFFIX, StateLocation

log = logging.getLogger(__name__)

KILLED_SUFFIX = ".resume-killed.json"


def marker_location(state: StateLocation) -> StateLocation:
    return StateLocation(url=state.url[: -len(STATE_SUFFIX)] + KILLED_SUFFIX, conn_id=state.conn_id)


def killed_marker(state: StateLocation) -> str | None:
    """The reason recorded by the API server when the attempt was set to failed by hand, if any."""
    data = storage.read_bytes(marker_location(state))
    if data is None:
        return None
    try:
        marker = json.loads(data)
    except ValueError:
        marker = {}
    return (
        f"DAG {marker.get('dag_id')!r}, run {marker.get('run_id')!r}: task {marker.get('task_id')!r} was set "
        f"to failed by hand ({marker.get('message', 'manually set to failed')}, at {marker.get('at')}); a run "
        "stopped on purpose is never resumed. Trigger a new run instead."
    )


def _resume_enabled(dag_id: str, session: Any) -> bool:
    from airflow.models.dagbag import DBDagBag

    from airflow_resume_provider.settings import settings_for

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
    document = {**identity, "message": message, "at": datetime.now(timezone.utc).isoformat()}
    target = marker_location(state)
    try:
        storage.write_bytes(storage.prepare(target), json.dumps(document).encode())
    except Exception:
        log.warning(
            "Could not record the manual failure at %s; the audit log still has it.",
            target.url,
            exc_info=True,
        )


def record_manual_failure(ti: Any, message: str) -> None:
    """
    Write the marker for an ORM task instance set to failed by hand. Returns at once: the DAG lookup
    and the write happen on the bounded background pool, so the API request is never held up.
    """
    if "manually set" not in str(message or "").lower():
        return
    identity = {
        "dag_id": ti.dag_id,
        "run_id": ti.run_id,
        "task_id": ti.task_id,
        "map_index": -1 if ti.map_index is None else ti.map_index,
        "try_number": ti.try_number,
    }

    background.submit(lambda: _write_marker(identity, str(message)))

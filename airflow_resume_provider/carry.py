"""
Carrying the task state store (Airflow 3.3, AIP-103) into the resumed run.

Durable operators (``airflow.sdk.ResumableJobMixin``) keep their external job id in the task state
store, scoped to one DAG run. A resumed run is a new run, so without this its tasks would submit
their jobs again. The entries of the tasks that run again (the resume point and every later task)
are copied from the failed run into the resumed run, in the transaction that creates it, so those
tasks reattach to their jobs. Expired entries are left behind; the asset state store is not touched.
Before Airflow 3.3 there is no task state store and nothing is carried.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow_resume_provider.compat import task_state_store_model

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

#: How much of a carried value the plan shows.
PREVIEW_CHARS = 200


def _rows(session: Session, dag_run_id: int, task_ids: list[str]) -> list[Any]:
    """The unexpired entries of ``task_ids`` in one run (none before Airflow 3.3)."""
    from sqlalchemy import or_, select

    model: Any = task_state_store_model()
    if model is None or not task_ids:
        return []
    now = datetime.now(timezone.utc)
    return list(
        session.scalars(
            select(model)
            .where(
                model.dag_run_id == dag_run_id,
                model.task_id.in_(task_ids),
                or_(model.expires_at.is_(None), model.expires_at > now),
            )
            .order_by(model.task_id, model.map_index, model.key)
        )
    )


def _shown(key: str, stored: str) -> str:
    """A stored value as the plan shows it: decoded, secrets masked, bounded."""
    from airflow_resume_provider.display import preview

    try:
        value = json.loads(stored)
    except ValueError:
        value = stored
    return preview(value, key, limit=PREVIEW_CHARS)


def carried_entries(session: Session, dag_run: Any, task_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """
    task_id -> ``{"key", "value", "map_index"}`` of each entry a resume would carry (read only), the
    value masked for display.
    """
    carried: dict[str, list[dict[str, Any]]] = {}
    for row in _rows(session, dag_run.id, task_ids):
        carried.setdefault(row.task_id, []).append(
            {"key": row.key, "value": _shown(row.key, row.value), "map_index": row.map_index}
        )
    return carried


def copy_entries(session: Session, source: Any, new_run: Any, task_ids: list[str]) -> int:
    """Copy the unexpired entries of ``task_ids`` from ``source`` into ``new_run``; how many were copied."""
    from sqlalchemy import insert

    rows = _rows(session, source.id, task_ids)
    if not rows:
        return 0
    model: Any = task_state_store_model()
    session.execute(
        insert(model),
        [
            {
                "dag_run_id": new_run.id,
                "dag_id": new_run.dag_id,
                "run_id": new_run.run_id,
                "task_id": row.task_id,
                "map_index": row.map_index,
                "key": row.key,
                "value": row.value,
                "updated_at": row.updated_at,
                "expires_at": row.expires_at,
            }
            for row in rows
        ],
    )
    return len(rows)

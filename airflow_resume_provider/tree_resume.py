"""
Resuming the children of a run before the run itself (the tree, see ``tree.py``).

Each child is resumed by :func:`airflow_resume_provider.resume.resume` like any run: its own transaction,
signed record, audit row and lineage, its record naming the parent's resumed run to be
(``parent_tree_run``), and its own children resumed first. Resumed run ids are deterministic, so
repeated or concurrent requests meet on the same child run and then on the same parent run.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from airflow_resume_provider.exceptions import ChildPermissionError
from airflow_resume_provider.run_record import TreeRun

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy.orm import Session

    from airflow_resume_provider.tree import PendingTree

log = logging.getLogger(__name__)


def resume_children(
    session: Session,
    dag_id: str,
    pending: PendingTree,
    *,
    user: str | None,
    triggered_by: str,
    kind: Any,
    delay_seconds: float = 0,
    rerun_children: bool,
    may_trigger: Callable[[str], bool] | None,
    resume: Callable[..., Any],
) -> None:
    """
    Resume each child run of ``pending`` (already resumed ones are returned as they are).

    :raises ChildPermissionError: the user may not trigger runs of a child's DAG; nothing is resumed.
    """
    if may_trigger is not None:
        for entry in pending.children:
            if not may_trigger(entry.child.dag_id):
                raise ChildPermissionError(
                    f"DAG {dag_id!r}: resuming this run resumes the child run {entry.child.dag_run_id!r} of DAG "
                    f"{entry.child.dag_id!r} (step {entry.task_id!r}), whose runs you may not trigger. Ask for "
                    "permission to trigger that DAG's runs."
                )
    for entry in pending.children:
        assert entry.child.dag_run_id is not None
        outcome = resume(
            session,
            entry.child.dag_id,
            entry.child.dag_run_id,
            user=user,
            triggered_by=triggered_by,
            kind=kind,
            # An automatic retry's delay holds for the whole tree: the children start with the parent.
            delay_seconds=delay_seconds,
            rerun_children=rerun_children,
            may_trigger=may_trigger,
            parent_tree_run=TreeRun(
                dag_id=dag_id, run_id=pending.new_run_id, task_id=entry.task_id, map_index=entry.map_index
            ),
        )
        log.info(
            "Resumed child run %s of DAG %s as %s for step %s of DAG %s",
            entry.child.dag_run_id,
            entry.child.dag_id,
            outcome.dag_run_id,
            entry.task_id,
            dag_id,
        )

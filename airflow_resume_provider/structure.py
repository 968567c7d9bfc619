"""The linear order of a DAG, its structure snapshot and hash, and the difference between two snapshots."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_resume_provider.exceptions import NonLinearDagError

if TYPE_CHECKING:
    from collections.abc import Sequence


@dataclass(frozen=True)
class TaskShape:
    """One step of a linear DAG: its id and its operator type (class name)."""

    task_id: str
    task_type: str


def linear_order(dag: Any) -> list[TaskShape]:
    """
    The tasks of a linear DAG from its root to its leaf.

    Works on SDK DAGs (parse time, worker) and serialized DAGs (scheduler, API server): both expose
    ``task_dict``, ``upstream_task_ids``, ``downstream_task_ids`` and ``task_type``.

    :raises NonLinearDagError: naming the tasks that branch or join, or the roots.
    """
    tasks = dag.task_dict
    if not tasks:
        raise NonLinearDagError(f"DAG {dag.dag_id!r} has no tasks; a resumable DAG needs at least one.")
    joins = sorted(t for t, task in tasks.items() if len(task.upstream_task_ids) > 1)
    branches = sorted(t for t, task in tasks.items() if len(task.downstream_task_ids) > 1)
    roots = sorted(t for t, task in tasks.items() if not task.upstream_task_ids)
    problems = []
    mapped = sorted(t for t, task in tasks.items() if getattr(task, "is_mapped", False))
    if mapped:
        problems.append(
            "dynamic task mapping (.expand) at " + ", ".join(map(repr, mapped)) + " is not supported"
        )
    if branches:
        problems.append("branching (more than one downstream task) at " + ", ".join(map(repr, branches)))
    if joins:
        problems.append("joining (more than one upstream task) at " + ", ".join(map(repr, joins)))
    if len(roots) != 1:
        problems.append(f"{len(roots)} root tasks ({', '.join(map(repr, roots))}) instead of exactly one")
    if problems:
        raise NonLinearDagError(
            f"DAG {dag.dag_id!r} has resume enabled but is not linear: {'; '.join(problems)}. "
            "A resumable DAG must be one chain (a >> b >> c). Chain the tasks, or set "
            "params={'resume': False} for this DAG."
        )
    order = []
    current = tasks[roots[0]]
    while True:
        order.append(TaskShape(current.task_id, current.task_type))
        if not current.downstream_task_ids:
            break
        current = tasks[next(iter(current.downstream_task_ids))]
    if len(order) != len(tasks):  # unreachable for a DAG without cycles; kept as a guard
        raise NonLinearDagError(
            f"DAG {dag.dag_id!r}: not every task is reachable from the root {roots[0]!r}."
        )
    return order


def structure_hash(order: Sequence[TaskShape]) -> str:
    """SHA-256 of the ordered (task_id, task_type) pairs."""
    payload = json.dumps([[t.task_id, t.task_type] for t in order], separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


def describe_changes(recorded: Sequence[TaskShape], current: Sequence[TaskShape]) -> list[str]:
    """
    In words, how the current structure differs from the recorded one; empty when equal.

    Changing a task's code or arguments is not a change here: only ids, order and operator types count.
    """
    if list(recorded) == list(current):
        return []
    old = {t.task_id: (i, t.task_type) for i, t in enumerate(recorded)}
    new = {t.task_id: (i, t.task_type) for i, t in enumerate(current)}
    changes = [f"task {t!r} was removed" for t in old if t not in new]
    changes += [f"task {t!r} was added" for t in new if t not in old]
    changes += [
        f"task {t!r} changed operator type from {old[t][1]} to {new[t][1]}"
        for t in old
        if t in new and old[t][1] != new[t][1]
    ]
    common_old = [t.task_id for t in recorded if t.task_id in new]
    common_new = [t.task_id for t in current if t.task_id in old]
    if common_old != common_new:
        changes.append(f"tasks were reordered: was {' >> '.join(common_old)}, now {' >> '.join(common_new)}")
    return changes

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
    """One step of a linear DAG: its id, its operator type (class name), and whether it is mapped."""

    task_id: str
    task_type: str
    #: A mapped step (``.expand()``) runs as N map indexes; it is still one step of the chain.
    mapped: bool = False


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
        order.append(
            TaskShape(current.task_id, current.task_type, bool(getattr(current, "is_mapped", False)))
        )
        if not current.downstream_task_ids:
            break
        current = tasks[next(iter(current.downstream_task_ids))]
    if len(order) != len(tasks):  # unreachable for a DAG without cycles; kept as a guard
        raise NonLinearDagError(
            f"DAG {dag.dag_id!r}: not every task is reachable from the root {roots[0]!r}."
        )
    return order


def structure_hash(order: Sequence[TaskShape]) -> str:
    """SHA-256 of the ordered (task_id, task_type) pairs, a mapped step's pair with ``"mapped"`` added
    (so the hash of a chain without mapped steps is what it always was)."""
    payload = json.dumps(
        [[t.task_id, t.task_type, "mapped"] if t.mapped else [t.task_id, t.task_type] for t in order],
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def mapped_task_ids(order: Sequence[TaskShape]) -> list[str]:
    """The mapped steps of a chain, in chain order."""
    return [t.task_id for t in order if t.mapped]


def recorded_order(tasks: Sequence[Sequence[str]], mapped: Sequence[str]) -> list[TaskShape]:
    """The chain a state record's structure snapshot describes."""
    return [TaskShape(task_id, task_type, task_id in mapped) for task_id, task_type in tasks]


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
    was_mapped = {t.task_id for t in recorded if t.mapped}
    now_mapped = {t.task_id for t in current if t.mapped}
    changes += [
        f"task {t!r} became mapped (.expand)" for t in new if t in old and t in now_mapped - was_mapped
    ]
    changes += [f"task {t!r} stopped being mapped" for t in new if t in old and t in was_mapped - now_mapped]
    common_old = [t.task_id for t in recorded if t.task_id in new]
    common_new = [t.task_id for t in current if t.task_id in old]
    if common_old != common_new:
        changes.append(f"tasks were reordered: was {' >> '.join(common_old)}, now {' >> '.join(common_new)}")
    return changes

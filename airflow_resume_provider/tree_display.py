"""
The tree in words and rows: a plan with its trigger steps' child runs nested under them, for the CLI's
``airflow resume status``, the bulk preview and the Resume page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from airflow_resume_provider.models import CHILD_RERUN, CHILD_RESUME, CHILD_TRIGGER

if TYPE_CHECKING:
    from airflow_resume_provider.models import ChildStep, PlanStep


@dataclass(frozen=True)
class TreeRow:
    """One row of a nested plan: a step of some run, or a child run under its trigger step."""

    depth: int
    step: PlanStep | None = None
    child: ChildStep | None = None
    map_index: int = -1


def child_summary(child: ChildStep) -> str:
    """What a resume does about a child run, in words."""
    run = f"run {child.dag_run_id!r} of DAG {child.dag_id!r}" if child.dag_run_id else f"DAG {child.dag_id!r}"
    if child.action == CHILD_TRIGGER:
        return f"{run}: {child.reason or 'the step runs as usual'}"
    if child.action == CHILD_RERUN and not child.resumable:
        return f"{run} cannot be resumed ({child.reason_code}): a fresh full child run is triggered instead"
    if child.action == CHILD_RESUME and not child.resumable:
        return f"{run} cannot be resumed ({child.reason_code}): {child.reason}"
    if child.resumed_run_id:
        return f"{run} was resumed as {child.resumed_run_id!r}: the step waits for it"
    return f"{run} is resumed at {child.plan.resume_task_id if child.plan else '?'!r}: the step waits for it"


def tree_rows(steps: list[PlanStep], depth: int = 0) -> list[TreeRow]:
    """The steps in order, each trigger step followed by its child runs and, nested, their steps."""
    rows = []
    for step in steps:
        rows.append(TreeRow(depth=depth, step=step))
        children = [(-1, step.child)] if step.child is not None else []
        children += [(m.map_index, m.child) for m in step.map_indexes if m.child is not None]
        for map_index, child in children:
            assert child is not None
            rows.append(TreeRow(depth=depth + 1, child=child, map_index=map_index))
            if child.plan is not None and child.action == CHILD_RESUME:
                rows.extend(tree_rows(child.plan.tasks, depth + 2))
    return rows


@dataclass(frozen=True)
class ChildView:
    """A child run as the Resume page shows it under its trigger step."""

    map_index: int
    dag_id: str
    dag_run_id: str | None
    action: str
    resumable: bool
    reason_code: str | None
    summary: str
    #: The child run's steps and, nested under its own trigger step, a grandchild's: ``(depth, task_id,
    #: action, resume_point)``, or a child run line ``(depth, summary, "child", False)``.
    steps: list[tuple[int, str, str, bool]]


def child_views(step: PlanStep) -> list[ChildView]:
    """The child runs of a step (one per map index of a mapped trigger step), with their nested steps."""
    children = [(-1, step.child)] if step.child is not None else []
    children += [(m.map_index, m.child) for m in step.map_indexes if m.child is not None]
    views = []
    for map_index, child in children:
        assert child is not None
        nested: list[tuple[int, str, str, bool]] = []
        if child.plan is not None and child.action == CHILD_RESUME:
            for row in tree_rows(child.plan.tasks):
                if row.step is not None:
                    nested.append((row.depth, row.step.task_id, row.step.action, row.step.resume_point))
                elif row.child is not None:
                    nested.append((row.depth, child_summary(row.child), "child", False))
        views.append(
            ChildView(
                map_index=map_index,
                dag_id=child.dag_id,
                dag_run_id=child.dag_run_id,
                action=child.action,
                resumable=child.resumable,
                reason_code=str(child.reason_code) if child.reason_code else None,
                summary=child_summary(child),
                steps=nested,
            )
        )
    return views

"""
What a user is shown of a run's child runs.

A parent run's verdict carries its trigger steps' child runs: their reasons and plans name the child
DAG's tasks, failures and state. A user who may read the parent's runs but not the child DAG's (another
team's DAG, a DAG their role does not cover) sees which child run it is and whether it can be resumed
(its ids, ``resumable``, ``reason_code``, ``action``), not why or how: its ``reason`` is replaced by a
note and its ``plan`` left out, and the reasons of the runs above it, which quote it, say the same.

Everything here is pure: the verdict is computed for everyone alike (``resume.assess``) and shaped for
the user at the edges (REST routes, the Resume page).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_resume_provider.models import ChildStep, Plan, Verdict

    #: Whether the user may read runs of a DAG (by its id).
    MayRead = Callable[[str], bool]


def hidden_note(dag_id: str) -> str:
    return f"Details hidden: you may not read runs of DAG {dag_id!r}."


def visible_verdict(verdict: Verdict, may_read: MayRead) -> Verdict:
    """``verdict`` as the user may see it (the same object when every child run is readable)."""
    hidden: list[tuple[str, str]] = []
    plan = _visible_plan(verdict.plan, may_read, hidden)
    if not hidden and plan == verdict.plan:
        return verdict
    return verdict.model_copy(update={"plan": plan, "reason": _scrub(verdict.reason, hidden)})


def visible_children(
    children: list[ChildStep], reason: str | None, may_read: MayRead
) -> tuple[list[ChildStep], str | None]:
    """A run's child runs and its reason (which may quote theirs) as the user may see them."""
    hidden: list[tuple[str, str]] = []
    shown = [_visible_child(child, may_read, hidden) for child in children]
    return shown, _scrub(reason, hidden)


def _visible_plan(plan: Plan, may_read: MayRead, hidden: list[tuple[str, str]]) -> Plan:
    tasks = []
    for step in plan.tasks:
        update: dict[str, object] = {}
        if step.child is not None:
            update["child"] = _visible_child(step.child, may_read, hidden)
        if any(index.child is not None for index in step.map_indexes):
            update["map_indexes"] = [
                index
                if index.child is None
                else index.model_copy(update={"child": _visible_child(index.child, may_read, hidden)})
                for index in step.map_indexes
            ]
        tasks.append(step.model_copy(update=update) if update else step)
    return plan.model_copy(update={"tasks": tasks})


def _visible_child(child: ChildStep, may_read: MayRead, hidden: list[tuple[str, str]]) -> ChildStep:
    """The child as the user may see it; ``hidden`` collects (its reason, the note) for the runs above."""
    if not may_read(child.dag_id):
        note = hidden_note(child.dag_id)
        if child.reason:
            hidden.append((child.reason, note))
        return child.model_copy(update={"reason": note, "plan": None})
    if child.plan is None:
        return child
    inner: list[tuple[str, str]] = []
    plan = _visible_plan(child.plan, may_read, inner)
    hidden.extend(inner)  # the runs above quote this child's reason, which quotes the hidden ones
    return child.model_copy(update={"plan": plan, "reason": _scrub(child.reason, inner)})


def _scrub(text: str | None, hidden: list[tuple[str, str]]) -> str | None:
    """``text`` with every hidden child's reason replaced by its note."""
    if text is None:
        return None
    for reason, note in hidden:
        text = text.replace(reason, note)
    return text

"""
The tree: a resume point that is a ``TriggerDagRunOperator`` step, and the child run it triggered.

When the resume point of a run triggers another DAG (and waits for it), the failed step's child run is
found through the step's ``trigger_run_id`` XCom and assessed like any run, recursively (its own resume
point may trigger a grandchild). A failed, resumable child is resumed with its parent and the parent's
step waits for the resumed child (``attach.py``); a child that cannot be resumed makes the parent refuse
(``child_not_resumable``) unless ``rerun_children`` asks for a fresh child run. A step whose child run
succeeded, or that triggered none, runs as usual.

Everything here reads; creating runs is ``tree_resume.py``'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_resume_provider.models import CHILD_RERUN, CHILD_RESUME, CHILD_TRIGGER, ChildStep, ReasonCode

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from airflow_resume_provider.models import Plan
    from airflow_resume_provider.resumability import RunFacts
    from airflow_resume_provider.run_record import ChildAttachment

#: The operator whose steps trigger a child run (``task_type``, the class name).
TRIGGER_OPERATOR = "TriggerDagRunOperator"
#: The XCom in which Airflow's task runner records the run a trigger step triggered.
TRIGGER_RUN_ID_KEY = "trigger_run_id"
#: How many levels of child runs are followed at most (a DAG that triggers itself ends here).
MAX_DEPTH = 10


@dataclass(frozen=True)
class PendingChild:
    """A child run to resume before its parent (``task_id``/``map_index``: the parent's step)."""

    task_id: str
    map_index: int
    child: ChildStep


def trigger_dag_id(task: Any) -> str | None:
    """The DAG a trigger step triggers, as the DAG defines it (None: not a trigger step)."""
    if task is None:
        return None
    value = getattr(task, "trigger_dag_id", None)
    if value is None:
        value = (getattr(task, "partial_kwargs", None) or {}).get("trigger_dag_id")
    if value is None and getattr(task, "task_type", None) != TRIGGER_OPERATOR:
        return None
    return value if isinstance(value, str) else None


def _rendered_dag_id(session: Session, dag_id: str, run_id: str, task_id: str, map_index: int) -> str | None:
    """The ``trigger_dag_id`` the failed attempt rendered (a templated one differs from the DAG's)."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields as Rendered
    from sqlalchemy import select

    fields = session.scalar(
        select(Rendered.rendered_fields).where(
            Rendered.dag_id == dag_id,
            Rendered.run_id == run_id,
            Rendered.task_id == task_id,
            Rendered.map_index == map_index,
        )
    )
    value = fields.get("trigger_dag_id") if isinstance(fields, dict) else None
    return value if isinstance(value, str) and value else None


def gather_children(
    session: Session, dag: Any, dag_run: Any, facts: RunFacts, *, rerun_children: bool, depth: int
) -> None:
    """
    Set ``facts.children`` (map index -> child) for a resume point that triggers a child run, and
    ``facts.child_error`` when one cannot be resumed and ``rerun_children`` was not asked for.
    """
    point = facts.resume_task_id
    task = dag.task_dict.get(point) if point is not None else None
    declared = trigger_dag_id(task)
    if point is None or (declared is None and getattr(task, "task_type", None) != TRIGGER_OPERATOR):
        return
    from airflow_resume_provider.resumability import KEPT_MAP_INDEX_STATES

    if facts.point_map_states:
        indexes = [i for i, state in facts.point_map_states if state not in KEPT_MAP_INDEX_STATES]
    else:
        indexes = [-1]
    for map_index in indexes:
        child_dag_id = (
            _rendered_dag_id(session, dag_run.dag_id, dag_run.run_id, point, map_index) or declared or "?"
        )
        child = assess_child(
            session,
            dag_run,
            point,
            map_index,
            child_dag_id,
            rerun_children=rerun_children,
            depth=depth + 1,
        )
        facts.children[map_index] = child
        if not child.resumable and facts.child_error is None and not rerun_children:
            which = "" if map_index < 0 else f" (map index {map_index})"
            facts.child_error = (
                f"DAG {facts.dag_id!r}, run {facts.run_id!r}: the child run {child.dag_run_id!r} of DAG "
                f"{child.dag_id!r} that step {point!r}{which} triggered cannot be resumed: {child.reason} "
                "Resume with rerun_children to trigger a fresh full child run instead."
            )


def _trigger_run_id(session: Session, dag_run: Any, task_id: str, map_index: int) -> str | None:
    from airflow_resume_provider.facts import _xcom

    value = _xcom(session, dag_run.dag_id, dag_run.run_id, task_id, TRIGGER_RUN_ID_KEY, map_index)
    return value if isinstance(value, str) and value else None


def assess_child(
    session: Session,
    dag_run: Any,
    task_id: str,
    map_index: int,
    child_dag_id: str,
    *,
    rerun_children: bool,
    depth: int,
) -> ChildStep:
    """The child run that step ``task_id`` (``map_index``) of ``dag_run`` triggered, assessed."""
    from airflow.models.dagbag import DBDagBag
    from airflow.models.dagrun import DagRun
    from sqlalchemy import select

    from airflow_resume_provider.facts import gather_facts
    from airflow_resume_provider.resumability import decide

    unable = CHILD_RERUN if rerun_children else CHILD_RESUME
    child_run_id = _trigger_run_id(session, dag_run, task_id, map_index)
    if child_run_id is None:
        return ChildStep(
            dag_id=child_dag_id,
            dag_run_id=None,
            resumable=True,
            action=CHILD_TRIGGER,
            reason="The step triggered no child run: it runs as usual and triggers one.",
        )
    child_run = session.scalar(
        select(DagRun).where(DagRun.dag_id == child_dag_id, DagRun.run_id == child_run_id)
    )
    child_dag = DBDagBag().get_latest_version_of_dag(child_dag_id, session=session)
    if child_run is None or child_dag is None:
        missing = f"DAG {child_dag_id!r} no longer exists." if child_dag is None else "it no longer exists."
        return ChildStep(
            dag_id=child_dag_id,
            dag_run_id=child_run_id,
            resumable=False,
            reason_code=ReasonCode.RUN_NOT_FOUND,
            reason=f"DAG {child_dag_id!r}, run {child_run_id!r}: {missing}",
            action=unable,
        )
    if str(child_run.state) == "success":
        return ChildStep(
            dag_id=child_dag_id,
            dag_run_id=child_run_id,
            resumable=True,
            action=CHILD_TRIGGER,
            reason="The child run succeeded: the step runs as usual and triggers a new child run.",
        )
    if depth > MAX_DEPTH:
        return ChildStep(
            dag_id=child_dag_id,
            dag_run_id=child_run_id,
            resumable=False,
            reason_code=ReasonCode.CHILD_NOT_RESUMABLE,
            reason=f"more than {MAX_DEPTH} levels of child runs: a resume does not follow them further.",
            action=unable,
        )
    verdict = decide(gather_facts(session, child_dag, child_run, rerun_children=rerun_children, depth=depth))
    return ChildStep(
        dag_id=child_dag_id,
        dag_run_id=child_run_id,
        resumable=verdict.resumable,
        reason_code=verdict.reason_code,
        reason=verdict.reason,
        action=CHILD_RESUME if verdict.resumable else unable,
        resumed_run_id=verdict.resumed_run_id,
        plan=verdict.plan,
    )


@dataclass(frozen=True)
class PendingTree:
    """A run whose resume waits for its children: the id its resumed run will have, and the children."""

    new_run_id: str
    children: list[PendingChild]


def child_steps(plan: Plan) -> list[PendingChild]:
    """Every child of the plan's resume point, by the parent's step and map index."""
    found = []
    for step in plan.tasks:
        if step.child is not None:
            found.append(PendingChild(step.task_id, -1, step.child))
        for index in step.map_indexes:
            if index.child is not None:
                found.append(PendingChild(step.task_id, index.map_index, index.child))
    return found


def pending_children(plan: Plan) -> list[PendingChild]:
    """The children a resume of the plan's run resumes first (not resumed yet)."""
    return [
        entry
        for entry in child_steps(plan)
        if entry.child.action == CHILD_RESUME and entry.child.resumable and entry.child.resumed_run_id is None
    ]


def attachments(plan: Plan) -> list[ChildAttachment]:
    """The steps of the resumed run that wait for a resumed child run instead of triggering one."""
    from airflow_resume_provider.run_record import ChildAttachment

    return [
        ChildAttachment(
            task_id=entry.task_id,
            map_index=entry.map_index,
            dag_id=entry.child.dag_id,
            run_id=entry.child.resumed_run_id,
        )
        for entry in child_steps(plan)
        if entry.child.action == CHILD_RESUME and entry.child.resumed_run_id is not None
    ]

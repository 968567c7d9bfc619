"""
The verdict: may this failed run be resumed, from which task, and what will happen to each task.

:func:`decide` is a pure function of :class:`RunFacts` (collected by :mod:`airflow_resume_provider.facts`
from the metadata DB and the state files). Reasons are checked in a fixed order and the first that
fails is the one reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_resume_provider.causes import infrastructure_failure, recorded_cause
from airflow_resume_provider.models import (
    CarriedEntry,
    ChildStep,
    MapIndexStep,
    Plan,
    PlanStep,
    ReasonCode,
    Verdict,
)
from airflow_resume_provider.state.paths import relative_to_roots
from airflow_resume_provider.structure import TaskShape, describe_changes, recorded_order

if TYPE_CHECKING:
    from airflow_resume_provider.inputs import MergedInputs
    from airflow_resume_provider.resume_param import ResumeSettings
    from airflow_resume_provider.state.chain import StateChain
    from airflow_resume_provider.state.paths import StateRoot


@dataclass
class RunFacts:
    """Everything the verdict depends on, collected for one run."""

    dag_id: str
    run_id: str
    run_state: str
    settings: ResumeSettings | None = None
    settings_error: str | None = None
    #: Why resumed runs cannot be signed or verified on this component (no secret), or None.
    signing_error: str | None = None
    #: The resumed run's id is taken by a run the provider did not create, or None.
    run_id_taken: str | None = None
    failed_task_id: str | None = None
    requested_task_id: str | None = None
    resume_task_id: str | None = None
    resume_point_error: str | None = None
    chain: StateChain | None = None
    state_error_code: ReasonCode | None = None
    state_error: str | None = None
    #: Why the run's state is past ``[resume] retention_days`` (then no state was read), or None.
    state_expired: str | None = None
    manual_kill: str | None = None
    current_order: list[TaskShape] | None = None
    current_order_error: str | None = None
    params_error: str | None = None
    resumed_run_id: str | None = None
    lineage: dict[str, Any] = field(default_factory=dict)
    #: Things the user should know that do not decide the verdict (e.g. an ignored conf entry).
    warnings: list[str] = field(default_factory=list)
    #: The folders state is read from, to show state files by their path relative to them.
    roots: list[StateRoot] = field(default_factory=list)
    #: task_id -> task state store entries a resume carries into the new run (``{"key", "value",
    #: "map_index"}``, values masked), for the tasks that run again.
    carried: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: A mapped resume point's map indexes and their states in the run: ``[(map_index, state), ...]``.
    point_map_states: list[tuple[int, str]] = field(default_factory=list)
    #: Mapped steps the current DAG would map over another number of values than the run did.
    map_count_changes: list[str] = field(default_factory=list)
    #: A full rerun (``on_retry: false``): every task runs again from the run's recorded context in the
    #: metadata DB; no state file is needed.
    full_rerun: bool = False
    #: For a full rerun: the tasks of the DAG version the run ran with, in order (None: unknown).
    ran_order: list[TaskShape] | None = None
    #: For a full rerun: the run's params (the DAG version it ran with, with its conf applied).
    run_params: dict[str, Any] = field(default_factory=dict)
    #: The failed run's run-level params as the resume point's state recorded them (None: not read).
    original_params: dict[str, Any] | None = None
    #: With changed inputs: the resumed run's params and conf, validated, and what changes.
    inputs: MergedInputs | None = None
    #: A resume point that triggers a child run: map index (-1: not mapped) -> the child run (``tree.py``).
    children: dict[int, ChildStep] = field(default_factory=dict)
    #: Why a child run of the resume point cannot be resumed (without ``rerun_children``), or None.
    child_error: str | None = None


def _refuse(facts: RunFacts, code: ReasonCode, reason: str) -> Verdict:
    return _verdict(facts, resumable=False, code=code, reason=reason)


def _verdict(
    facts: RunFacts, *, resumable: bool, code: ReasonCode | None = None, reason: str | None = None
) -> Verdict:
    return Verdict(
        dag_id=facts.dag_id,
        dag_run_id=facts.run_id,
        resumable=resumable,
        reason_code=code,
        reason=reason,
        failed_task_id=facts.failed_task_id,
        resume_task_id=facts.resume_task_id,
        failure=failure_of(facts),
        plan=Plan(resume_task_id=facts.resume_task_id, tasks=build_plan(facts)),
        resumed_run_id=facts.resumed_run_id,
        lineage=facts.lineage,
        warnings=list(facts.warnings),
    )


def failure_of(facts: RunFacts) -> dict[str, Any] | None:
    """
    The failed attempt's failure with its cause: as the task recorded it, or ``infrastructure`` when the
    failed attempt's state file holds no failure (the task never got to record one). None when the
    failed attempt's state was not read (e.g. a resume at an earlier task) or the run was stopped by hand.
    """
    chain = facts.chain
    if chain is None:
        return None
    recorded = chain.head.failure
    if recorded is not None:
        return {**recorded.model_dump(), "cause": recorded_cause(recorded.exception_type, recorded.cause)}
    if facts.manual_kill or chain.head.identity.task_id != facts.failed_task_id:
        return None
    return infrastructure_failure(chain.head.identity.try_number)


def decide(facts: RunFacts) -> Verdict:
    """The verdict for a run, naming the first condition that fails."""
    where = f"DAG {facts.dag_id!r}, run {facts.run_id!r}"
    if facts.settings_error:
        return _refuse(facts, ReasonCode.INVALID_CONFIG, facts.settings_error)
    if facts.signing_error:
        return _refuse(facts, ReasonCode.SIGNING_UNAVAILABLE, facts.signing_error)
    if facts.settings is None or not facts.settings.enabled:
        return _refuse(
            facts,
            ReasonCode.RESUME_DISABLED,
            f"{where}: resume is not enabled for this DAG. Add params={{'resume': True}} to the DAG to enable it "
            "for future runs.",
        )
    if facts.run_state != "failed":
        return _refuse(
            facts,
            ReasonCode.RUN_NOT_FAILED,
            f"{where}: the run is {facts.run_state}; only failed runs can be resumed.",
        )
    if facts.failed_task_id is None:
        return _refuse(
            facts,
            ReasonCode.NO_FAILED_TASK,
            f"{where}: no task of the run failed (the run itself was failed, e.g. by a timeout), so there is "
            "no failed task to resume at.",
        )
    if facts.resume_point_error:
        return _refuse(facts, ReasonCode.INVALID_RESUME_POINT, facts.resume_point_error)
    if facts.state_error_code:
        return _refuse(facts, facts.state_error_code, facts.state_error or "")
    if facts.state_expired:
        return _refuse(facts, ReasonCode.STATE_EXPIRED, facts.state_expired)
    if facts.manual_kill:
        return _refuse(facts, ReasonCode.MANUAL_KILL, facts.manual_kill)
    if facts.current_order_error:
        return _refuse(facts, ReasonCode.STRUCTURE_CHANGED, facts.current_order_error)
    assert facts.current_order is not None
    if facts.full_rerun:
        if facts.ran_order is None:
            return _refuse(
                facts,
                ReasonCode.STRUCTURE_CHANGED,
                f"{where}: the DAG version the run ran with is no longer stored, so its structure cannot be "
                "compared with the DAG's. Trigger a new run instead.",
            )
        recorded = facts.ran_order
    else:
        assert facts.chain is not None
        recorded = recorded_order(facts.chain.structure.tasks, facts.chain.structure.mapped)
    changes = describe_changes(recorded, facts.current_order) or facts.map_count_changes
    if changes:
        return _refuse(
            facts,
            ReasonCode.STRUCTURE_CHANGED,
            f"{where}: the DAG's structure changed since the run: {'; '.join(changes)}. A run can only be "
            "resumed on the same tasks in the same order (changing a task's code or arguments is fine). "
            "Trigger a new run instead.",
        )
    if facts.params_error:
        return _refuse(facts, ReasonCode.PARAMS_INVALID, facts.params_error)
    if facts.child_error:
        return _refuse(facts, ReasonCode.CHILD_NOT_RESUMABLE, facts.child_error)
    if facts.run_id_taken:
        return _refuse(facts, ReasonCode.RUN_ID_TAKEN, facts.run_id_taken)
    return _verdict(facts, resumable=True)


#: The states of a mapped resume point's indexes that a resume keeps (the others run again).
KEPT_MAP_INDEX_STATES = ("success", "skipped")


def point_map_plan(
    states: list[tuple[int, str]], children: dict[int, ChildStep] | None = None
) -> list[MapIndexStep]:
    """A mapped resume point's indexes: those that succeeded (or skipped) are kept, the others run again
    (a mapped trigger step's index with its child run)."""
    children = children or {}
    return [
        MapIndexStep(
            map_index=index,
            action="restored" if state in KEPT_MAP_INDEX_STATES else "run",
            state=state,
            child=children.get(index),
        )
        for index, state in states
    ]


def build_plan(facts: RunFacts) -> list[PlanStep]:
    """What happens to each task: restored from which state file, or run."""
    if facts.full_rerun and facts.current_order is not None:
        order = facts.current_order
    elif facts.chain is not None:
        order = recorded_order(facts.chain.structure.tasks, facts.chain.structure.mapped)
    elif facts.current_order is not None:
        order = facts.current_order
    else:
        return []
    sources = {}
    map_counts: dict[str, int] = {}
    if facts.chain is not None:
        for record, ref in facts.chain.records:
            upstream = record.inputs.upstream_task_id
            if upstream is not None:
                keys = sorted({x.key for x in record.inputs.xcoms})
                sources[upstream] = (relative_to_roots(ref.path, facts.roots), keys)
                if record.inputs.upstream_map_count is not None:
                    map_counts[upstream] = record.inputs.upstream_map_count
    point = facts.resume_task_id
    ids = [t.task_id for t in order]
    if point is None or point not in ids:
        return []  # nothing (valid) to resume at: no plan to show
    cut = ids.index(point)
    steps = []
    for i, shape in enumerate(order):
        if i < cut:
            path, keys = sources.get(shape.task_id, (None, []))
            steps.append(
                PlanStep(
                    task_id=shape.task_id,
                    task_type=shape.task_type,
                    action="restored",
                    source=path,
                    xcom_keys=keys,
                    mapped=shape.mapped,
                    map_indexes=[
                        MapIndexStep(map_index=i, action="restored", state="success")
                        for i in range(map_counts.get(shape.task_id, 0))
                    ],
                )
            )
        else:
            steps.append(
                PlanStep(
                    task_id=shape.task_id,
                    task_type=shape.task_type,
                    action="run",
                    resume_point=i == cut,
                    carries=[CarriedEntry(**entry) for entry in facts.carried.get(shape.task_id, [])],
                    mapped=shape.mapped,
                    map_indexes=point_map_plan(facts.point_map_states, facts.children) if i == cut else [],
                    child=facts.children.get(-1) if i == cut else None,
                )
            )
    return steps

"""
The verdict: may this failed run be resumed, from which task, and what will happen to each task.

:func:`decide` is a pure function of :class:`RunFacts` (collected by :mod:`airflow_resume_provider.facts`
from the metadata DB and the state files). Reasons are checked in a fixed order and the first that
fails is the one reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from airflow_resume_provider.state.paths import relative_to_roots
from airflow_resume_provider.structure import TaskShape, describe_changes, recorded_order

if TYPE_CHECKING:
    from airflow_resume_provider.settings import ResumeSettings
    from airflow_resume_provider.state.chain import StateChain
    from airflow_resume_provider.state.paths import StateRoot

# Reason codes, returned by the API and the CLI. Never rename.
RESUME_DISABLED = "resume_disabled"
INVALID_CONFIG = "invalid_resume_config"
RUN_NOT_FAILED = "run_not_failed"
NO_FAILED_TASK = "no_failed_task"
INVALID_RESUME_POINT = "invalid_resume_point"
STATE_NOT_RECORDED = "state_not_recorded"
STATE_MISSING = "state_missing"
STATE_INVALID = "state_invalid"
STATE_UNREACHABLE = "state_unreachable"
STATE_EXPIRED = "state_expired"
MANUAL_KILL = "manual_kill"
STRUCTURE_CHANGED = "structure_changed"
PARAMS_INVALID = "params_invalid"


@dataclass
class RunFacts:
    """Everything the verdict depends on, collected for one run."""

    dag_id: str
    run_id: str
    run_state: str
    settings: ResumeSettings | None = None
    settings_error: str | None = None
    failed_task_id: str | None = None
    requested_task_id: str | None = None
    resume_task_id: str | None = None
    resume_point_error: str | None = None
    chain: StateChain | None = None
    state_error_code: str | None = None
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


class CarriedEntry(BaseModel):
    """A task state store entry (e.g. an external job id) copied into the resumed run."""

    model_config = ConfigDict(frozen=True)

    key: str
    value: str = Field(description="The stored value, secrets masked, shortened if long.")
    map_index: int = -1


class MapIndexStep(BaseModel):
    """What a resume does to one map index of a mapped step."""

    model_config = ConfigDict(frozen=True)

    map_index: int
    action: str = Field(description="'restored' (not run again; its results kept) or 'run'.")
    state: str | None = Field(default=None, description="The index's state in the failed run.")


class PlanStep(BaseModel):
    """What a resume does to one task. Part of the REST API and the CLI's JSON: never rename fields."""

    model_config = ConfigDict(frozen=True)

    task_id: str
    task_type: str
    action: str = Field(description="'restored' (not run; results restored from source) or 'run'.")
    resume_point: bool = False
    source: str | None = Field(default=None, description="State file the restored values come from.")
    xcom_keys: list[str] = Field(default_factory=list)
    carries: list[CarriedEntry] = Field(
        default_factory=list,
        description="Task state store entries copied into the resumed run (the task reattaches to them).",
    )
    mapped: bool = Field(default=False, description="A mapped step (.expand), run as N map indexes.")
    map_indexes: list[MapIndexStep] = Field(
        default_factory=list,
        description="For a mapped step restored or resumed at: each map index and what happens to it.",
    )


class Plan(BaseModel):
    model_config = ConfigDict(frozen=True)

    resume_task_id: str | None = Field(description="The task the resumed run starts at.")
    tasks: list[PlanStep] = Field(description="Every task in order, with what a resume does to it.")


class Verdict(BaseModel):
    """
    The verdict on one run: the service's result and the body of the REST API and of the CLI's JSON
    output (one model for all three). Field names are part of the API: never rename.
    """

    model_config = ConfigDict(frozen=True)

    dag_id: str
    dag_run_id: str
    resumable: bool
    reason_code: str | None
    reason: str | None
    failed_task_id: str | None
    resume_task_id: str | None
    failure: dict[str, Any] | None
    plan: Plan
    resumed_run_id: str | None = Field(description="The run that already resumed this one, if any.")
    lineage: dict[str, Any]
    warnings: list[str] = Field(
        default_factory=list, description="What the user should know that does not decide the verdict."
    )

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def _refuse(facts: RunFacts, code: str, reason: str) -> Verdict:
    return _verdict(facts, resumable=False, code=code, reason=reason)


def _verdict(
    facts: RunFacts, *, resumable: bool, code: str | None = None, reason: str | None = None
) -> Verdict:
    failure = None
    if facts.chain is not None and facts.chain.head.failure is not None:
        failure = facts.chain.head.failure.model_dump()
    return Verdict(
        dag_id=facts.dag_id,
        dag_run_id=facts.run_id,
        resumable=resumable,
        reason_code=code,
        reason=reason,
        failed_task_id=facts.failed_task_id,
        resume_task_id=facts.resume_task_id,
        failure=failure,
        plan=Plan(resume_task_id=facts.resume_task_id, tasks=build_plan(facts)),
        resumed_run_id=facts.resumed_run_id,
        lineage=facts.lineage,
        warnings=list(facts.warnings),
    )


def decide(facts: RunFacts) -> Verdict:
    """The verdict for a run, naming the first condition that fails."""
    where = f"DAG {facts.dag_id!r}, run {facts.run_id!r}"
    if facts.settings_error:
        return _refuse(facts, INVALID_CONFIG, facts.settings_error)
    if facts.settings is None or not facts.settings.enabled:
        return _refuse(
            facts,
            RESUME_DISABLED,
            f"{where}: resume is not enabled for this DAG. Add params={{'resume': True}} to the DAG to enable it "
            "for future runs.",
        )
    if facts.run_state != "failed":
        return _refuse(
            facts, RUN_NOT_FAILED, f"{where}: the run is {facts.run_state}; only failed runs can be resumed."
        )
    if facts.failed_task_id is None:
        return _refuse(
            facts,
            NO_FAILED_TASK,
            f"{where}: no task of the run failed (the run itself was failed, e.g. by a timeout), so there is "
            "no failed task to resume at.",
        )
    if facts.resume_point_error:
        return _refuse(facts, INVALID_RESUME_POINT, facts.resume_point_error)
    if facts.state_error_code:
        return _refuse(facts, facts.state_error_code, facts.state_error or "")
    if facts.state_expired:
        return _refuse(facts, STATE_EXPIRED, facts.state_expired)
    if facts.manual_kill:
        return _refuse(facts, MANUAL_KILL, facts.manual_kill)
    if facts.current_order_error:
        return _refuse(facts, STRUCTURE_CHANGED, facts.current_order_error)
    assert facts.chain is not None and facts.current_order is not None
    structure = facts.chain.structure
    recorded = recorded_order(structure.tasks, structure.mapped)
    changes = describe_changes(recorded, facts.current_order) or facts.map_count_changes
    if changes:
        return _refuse(
            facts,
            STRUCTURE_CHANGED,
            f"{where}: the DAG's structure changed since the run: {'; '.join(changes)}. A run can only be "
            "resumed on the same tasks in the same order (changing a task's code or arguments is fine). "
            "Trigger a new run instead.",
        )
    if facts.params_error:
        return _refuse(facts, PARAMS_INVALID, facts.params_error)
    return _verdict(facts, resumable=True)


#: The states of a mapped resume point's indexes that a resume keeps (the others run again).
KEPT_MAP_INDEX_STATES = ("success", "skipped")


def point_map_plan(states: list[tuple[int, str]]) -> list[MapIndexStep]:
    """A mapped resume point's indexes: those that succeeded (or skipped) are kept, the others run again."""
    return [
        MapIndexStep(
            map_index=index, action="restored" if state in KEPT_MAP_INDEX_STATES else "run", state=state
        )
        for index, state in states
    ]


def build_plan(facts: RunFacts) -> list[PlanStep]:
    """What happens to each task: restored from which state file, or run."""
    if facts.chain is not None:
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
                    map_indexes=point_map_plan(facts.point_map_states) if i == cut else [],
                )
            )
    return steps

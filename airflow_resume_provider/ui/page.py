"""
What the Resume page shows: built from the verdict and the recorded state, secrets masked.

Replayed XCom values are shown only to users who may read the DAG's XComs (Airflow guards them with
their own permission, apart from reading runs); others see each XCom's key and size.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_resume_provider.display import masked, shortened
from airflow_resume_provider.tree_display import ChildView, child_views

if TYPE_CHECKING:
    from airflow_resume_provider.inputs import ParamField
    from airflow_resume_provider.models import CarriedEntry, PlanStep, Verdict
    from airflow_resume_provider.resumability import RunFacts

PREVIEW_CHARS = 300


def json_size(value: Any) -> str:
    """The size of a value's JSON, for users who may not see the value itself."""
    size = len(json.dumps(value, default=str, ensure_ascii=False).encode())
    return "1 byte" if size == 1 else f"{size} bytes"


def preview(value: Any, name: str | None = None) -> str:
    """A masked, bounded one-line JSON rendering of a value (strings quoted, as JSON shows them)."""
    return shortened(json.dumps(masked(value, name), default=str, ensure_ascii=False), PREVIEW_CHARS)


def carried(entry: CarriedEntry) -> str:
    """A carried task state store entry as ``key=value`` (``key[i]=value`` for a mapped task)."""
    index = f"[{entry.map_index}]" if entry.map_index >= 0 else ""
    return f"{entry.key}{index}={entry.value}"


def index_ranges(indexes: list[int]) -> str:
    """Map indexes as short ranges: ``[0, 1, 2, 4]`` -> ``"0-2, 4"``."""
    parts: list[str] = []
    for index in sorted(indexes):
        if parts and parts[-1].rpartition("-")[2] == str(index - 1):
            start = parts[-1].partition("-")[0]
            parts[-1] = f"{start}-{index}"
        else:
            parts.append(str(index))
    return ", ".join(parts)


def map_summary(step: PlanStep) -> str:
    """What a resume does to a mapped step's indexes, in words (empty when it lists none)."""
    restored = [m.map_index for m in step.map_indexes if m.action == "restored"]
    run = [m.map_index for m in step.map_indexes if m.action == "run"]
    parts = []
    if restored:
        parts.append(f"restored {index_ranges(restored)}")
    if run:
        parts.append(f"run {index_ranges(run)}")
    return "; ".join(parts)


@dataclass
class Step:
    task_id: str
    task_type: str
    original_state: str | None
    action: str
    resume_point: bool
    can_resume_here: bool
    #: (key, masked preview of the value) or, when values are hidden, (key, size of the value).
    xcoms: list[tuple[str, str]] = field(default_factory=list)
    #: Task state store entries the resumed run carries, as ``key=value`` (values masked).
    carries: list[str] = field(default_factory=list)
    mapped: bool = False
    #: A mapped step's indexes by what happens to them: ``[("restored", "0-2, 4"), ("run", "3")]``.
    map_indexes: list[tuple[str, str]] = field(default_factory=list)
    #: A trigger step at the resume point: its child runs, with their own steps nested.
    children: list[ChildView] = field(default_factory=list)


@dataclass
class PageModel:
    verdict: Verdict
    steps: list[Step]
    inputs: list[tuple[str, str]]
    structure_ok: bool | None
    structure_text: str
    failure_message: str | None
    failure_type: str | None
    failure_try: int | None
    #: ``infrastructure``, ``timeout`` or ``error``; None when the failed attempt's state was not read.
    failure_cause: str | None = None
    #: The map index that failed, when the failed task is mapped.
    failure_map_index: int | None = None
    #: False when the user may not read the DAG's XComs: ``Step.xcoms`` then hold sizes, not values.
    xcom_values_shown: bool = True
    #: The run-level params a resume may change, with the failed run's values.
    param_fields: list[ParamField] = field(default_factory=list)


def build(
    verdict: Verdict,
    facts: RunFacts,
    ti_states: dict[str, str | None],
    *,
    show_xcom_values: bool,
    param_fields: list[ParamField] | None = None,
) -> PageModel:
    chain = facts.chain
    restored = chain.restored_tasks() if chain is not None else {}

    def shown(key: str, value: Any) -> str:
        return preview(value, key) if show_xcom_values else json_size(value)

    steps = []
    for step in verdict.plan.tasks:
        state = ti_states.get(step.task_id)
        steps.append(
            Step(
                task_id=step.task_id,
                task_type=step.task_type,
                original_state=state,
                action=step.action,
                resume_point=step.resume_point,
                can_resume_here=state == "success" or step.task_id == verdict.failed_task_id,
                xcoms=[
                    (x.key if x.map_index < 0 else f"{x.key}[{x.map_index}]", shown(x.key, x.value))
                    for x in (
                        restored[step.task_id].xcoms
                        if step.task_id in restored and step.action == "restored"
                        else []
                    )
                ],
                carries=[carried(entry) for entry in step.carries],
                mapped=step.mapped,
                map_indexes=[
                    (action, index_ranges([m.map_index for m in step.map_indexes if m.action == action]))
                    for action in ("restored", "run")
                    if any(m.action == action for m in step.map_indexes)
                ],
                children=child_views(step),
            )
        )
    inputs: list[tuple[str, str]] = []
    if chain is not None:
        head = chain.head.inputs
        inputs = [
            ("logical_date", head.logical_date or "None"),
            ("data_interval", f"{head.data_interval_start or 'None'} → {head.data_interval_end or 'None'}"),
            ("conf", preview(head.conf, "conf")),
            ("params", preview(head.params, "params")),
        ]
    failure = verdict.failure or {}
    if verdict.reason_code == "structure_changed":
        structure_ok, structure_text = False, verdict.reason or ""
    elif chain is not None and facts.current_order is not None:
        structure_ok = True
        structure_text = f"Unchanged: the DAG's {len(facts.current_order)} tasks match the recorded order and operator types."
    else:
        structure_ok, structure_text = None, "Not checked: the run's recorded state is not available."
    return PageModel(
        verdict=verdict,
        steps=steps,
        inputs=inputs,
        structure_ok=structure_ok,
        structure_text=structure_text,
        failure_message=masked(failure.get("message")) if failure else None,
        failure_type=failure.get("exception_type"),
        failure_try=failure.get("try_number"),
        failure_cause=failure.get("cause"),
        failure_map_index=(
            chain.head.identity.map_index
            if chain is not None and chain.head.identity.map_index >= 0
            else None
        ),
        xcom_values_shown=show_xcom_values,
        param_fields=param_fields or [],
    )


@dataclass
class FailedRunRow:
    """One failed run on the DAG-level Resume tab."""

    run_id: str
    ended: str
    #: resumable, existing (already resumed), refused, or unknown (assessing it failed).
    status: str
    failed_task_id: str | None = None
    resume_task_id: str | None = None
    resumed_run_id: str | None = None
    reason_code: str | None = None
    reason: str | None = None


def failed_run_row(run_id: str, ended: Any, verdict: Verdict | None) -> FailedRunRow:
    when = ended.strftime("%Y-%m-%d %H:%M:%S UTC") if ended is not None else ""
    if verdict is None:
        return FailedRunRow(
            run_id, when, "unknown", reason="Could not be assessed; see the API server's log."
        )
    if verdict.resumed_run_id:
        status = "existing"
    elif verdict.resumable:
        status = "resumable"
    else:
        status = "refused"
    return FailedRunRow(
        run_id,
        when,
        status,
        failed_task_id=verdict.failed_task_id,
        resume_task_id=verdict.resume_task_id,
        resumed_run_id=verdict.resumed_run_id,
        reason_code=verdict.reason_code,
        reason=str(masked(verdict.reason)) if verdict.reason else None,
    )

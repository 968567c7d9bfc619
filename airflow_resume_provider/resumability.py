"""
The verdict: may this failed run be resumed, from which task, and what will happen to each task.

:func:`decide` is a pure function of :class:`RunFacts`; :func:`gather_facts` collects them from the
metadata DB and the state files. Reasons are checked in a fixed order and the first that fails is
the one reported.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_resume_provider.bookkeeping import CONF_KEY, XCOM_CAPTURE_ERROR
from airflow_resume_provider.exceptions import (
    NonLinearDagError,
    ResumeConfigError,
    StateError,
    StateMissingError,
    StateStorageError,
)
from airflow_resume_provider.settings import ResumeSettings, settings_for
from airflow_resume_provider.state import storage
from airflow_resume_provider.state.chain import StateChain, load_chain
from airflow_resume_provider.structure import TaskShape, describe_changes, linear_order

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

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
MANUAL_KILL = "manual_kill"
STRUCTURE_CHANGED = "structure_changed"

# Audit-log events of Airflow's API that can set a task instance or a run to failed by hand.
MANUAL_STATE_EVENTS = ("patch_task_instance", "bulk_task_instances", "patch_dag_run", "bulk_dag_runs")
_FAILED_IN_EXTRA = re.compile(r'"(?:new_state|state)"\s*:\s*"failed"')

RESUME_RUN_PREFIX = "resume__"
MAX_RUN_ID_LENGTH = 250
_RUN_ID_ALLOWED = re.compile(r"^[A-Za-z0-9_.~:+-]+$")


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
    manual_kill: str | None = None
    current_order: list[TaskShape] | None = None
    current_order_error: str | None = None
    resumed_run_id: str | None = None
    lineage: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PlanStep:
    task_id: str
    task_type: str
    #: "restored" (not executed; results restored from ``source``) or "run" (left to the scheduler).
    action: str
    resume_point: bool = False
    source: str | None = None
    xcom_keys: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Verdict:
    dag_id: str
    run_id: str
    resumable: bool
    reason_code: str | None
    reason: str | None
    failed_task_id: str | None
    resume_task_id: str | None
    failure: dict[str, Any] | None
    plan: list[PlanStep]
    resumed_run_id: str | None
    lineage: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form shared by the REST API and the CLI: the plan as an object with its tasks."""
        body = asdict(self)
        body["plan"] = {"resume_task_id": self.resume_task_id, "tasks": body["plan"]}
        return body


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
        run_id=facts.run_id,
        resumable=resumable,
        reason_code=code,
        reason=reason,
        failed_task_id=facts.failed_task_id,
        resume_task_id=facts.resume_task_id,
        failure=failure,
        plan=build_plan(facts),
        resumed_run_id=facts.resumed_run_id,
        lineage=facts.lineage,
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
    if facts.manual_kill:
        return _refuse(facts, MANUAL_KILL, facts.manual_kill)
    if facts.current_order_error:
        return _refuse(facts, STRUCTURE_CHANGED, facts.current_order_error)
    assert facts.chain is not None and facts.current_order is not None
    recorded = [TaskShape(t, k) for t, k in facts.chain.head.structure.tasks]
    changes = describe_changes(recorded, facts.current_order)
    if changes:
        return _refuse(
            facts,
            STRUCTURE_CHANGED,
            f"{where}: the DAG's structure changed since the run: {'; '.join(changes)}. A run can only be "
            "resumed on the same tasks in the same order (changing a task's code or arguments is fine). "
            "Trigger a new run instead.",
        )
    return _verdict(facts, resumable=True)


def build_plan(facts: RunFacts) -> list[PlanStep]:
    """What happens to each task: restored from which state file, or run."""
    if facts.chain is not None:
        order = [TaskShape(t, k) for t, k in facts.chain.head.structure.tasks]
    elif facts.current_order is not None:
        order = facts.current_order
    else:
        return []
    sources = {}
    if facts.chain is not None:
        for record, ref in facts.chain.records:
            if record.inputs.upstream_task_id is not None:
                keys = sorted({x.key for x in record.inputs.xcoms})
                sources[record.inputs.upstream_task_id] = (ref.path, keys)
    point = facts.resume_task_id
    if point is None:
        return []  # nothing to resume at: no plan to show
    ids = [t.task_id for t in order]
    cut = ids.index(point) if point in ids else len(ids)
    steps = []
    for i, shape in enumerate(order):
        if i < cut:
            path, keys = sources.get(shape.task_id, (None, []))
            steps.append(PlanStep(shape.task_id, shape.task_type, "restored", source=path, xcom_keys=keys))
        else:
            steps.append(PlanStep(shape.task_id, shape.task_type, "run", resume_point=i == cut))
    return steps


# --- collecting the facts ---------------------------------------------------------------------------


def resumed_run_id_for(source_run_id: str, conf: dict[str, Any] | None) -> tuple[str, str, int]:
    """The deterministic id of the run that resumes ``source_run_id``, with its root run and count."""
    marker = (conf or {}).get(CONF_KEY)
    if isinstance(marker, dict) and marker.get("root_run_id"):
        root, count = str(marker["root_run_id"]), int(marker.get("resume_count", 0)) + 1
    else:
        root, count = source_run_id, 1
    run_id = f"{RESUME_RUN_PREFIX}{root}__{count}"
    if len(run_id) > MAX_RUN_ID_LENGTH or not _RUN_ID_ALLOWED.match(run_id):
        import hashlib

        run_id = f"{RESUME_RUN_PREFIX}{hashlib.sha256(root.encode()).hexdigest()[:24]}__{count}"
    return run_id, root, count


def _manual_kill_from_audit_log(session: Session, dag_id: str, run_id: str) -> str | None:
    from airflow.models.log import Log
    from sqlalchemy import or_, select

    rows = session.execute(
        select(Log.event, Log.owner, Log.task_id, Log.extra, Log.dttm)
        .where(Log.dag_id == dag_id, Log.event.in_(MANUAL_STATE_EVENTS))
        .where(or_(Log.run_id == run_id, Log.extra.contains(run_id)))
        .order_by(Log.dttm)
    ).all()
    for event, owner, task_id, extra, dttm in rows:
        if extra and _FAILED_IN_EXTRA.search(extra):
            what = f"task {task_id!r}" if task_id else "the run"
            return (
                f"DAG {dag_id!r}, run {run_id!r}: {what} was set to failed by {owner or 'a user'} "
                f"({event} at {dttm}); a run stopped on purpose is never resumed. Trigger a new run instead."
            )
    return None


def _capture_error(session: Session, dag_id: str, run_id: str, task_id: str) -> str | None:
    from airflow.models.xcom import XComModel

    value = session.scalar(
        XComModel.get_many(
            run_id=run_id, key=XCOM_CAPTURE_ERROR, task_ids=task_id, dag_ids=dag_id
        ).with_only_columns(XComModel.value)
    )
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return value
    return value.get("reason") if isinstance(value, dict) else str(value)


def gather_facts(session: Session, dag: Any, dag_run: Any, *, from_task_id: str | None = None) -> RunFacts:
    """Collect the facts for ``dag_run`` of ``dag`` (the latest serialized version)."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from sqlalchemy import select

    from airflow_resume_provider.manual_kill import killed_marker

    facts = RunFacts(dag_id=dag_run.dag_id, run_id=dag_run.run_id, run_state=str(dag_run.state))
    marker = (dag_run.conf or {}).get(CONF_KEY)
    if isinstance(marker, dict):
        facts.lineage = {
            k: marker.get(k)
            for k in (
                "parent_run_id",
                "root_run_id",
                "resume_count",
                "resumed_at_task_id",
                "kind",
                "retry_attempt",
            )
        }
    resumed_id, _root, _count = resumed_run_id_for(dag_run.run_id, dag_run.conf)
    if session.scalar(select(DagRun.id).where(DagRun.dag_id == dag_run.dag_id, DagRun.run_id == resumed_id)):
        facts.resumed_run_id = resumed_id
    try:
        facts.settings = settings_for(dag)
    except ResumeConfigError as err:
        facts.settings_error = str(err)
    try:
        facts.current_order = linear_order(dag)
    except NonLinearDagError as err:
        facts.current_order_error = str(err)

    tis = {
        ti.task_id: ti
        for ti in session.scalars(
            select(TaskInstance).where(
                TaskInstance.dag_id == dag_run.dag_id, TaskInstance.run_id == dag_run.run_id
            )
        )
    }
    failed = sorted(
        (ti for ti in tis.values() if ti.state == "failed"),
        key=lambda ti: (ti.start_date is None, ti.start_date or 0),
    )
    if failed:
        facts.failed_task_id = failed[0].task_id
    if facts.failed_task_id is None or facts.run_state != "failed":
        return facts

    facts.requested_task_id = from_task_id
    point = from_task_id or facts.failed_task_id
    facts.resume_task_id = point
    where = f"DAG {dag_run.dag_id!r}, run {dag_run.run_id!r}"
    if point not in tis:
        facts.resume_point_error = f"{where}: {point!r} is not a task of this run."
        return facts
    point_ti = tis[point]
    if point != facts.failed_task_id and point_ti.state != "success":
        facts.resume_point_error = (
            f"{where}: cannot resume at {point!r}, which is {point_ti.state}; choose the failed task "
            f"{facts.failed_task_id!r} or a task before it that succeeded."
        )
        return facts

    facts.manual_kill = _manual_kill_from_audit_log(session, dag_run.dag_id, dag_run.run_id)
    try_number = max(point_ti.try_number or 1, 1)
    location = storage.location_for(
        dag_id=dag_run.dag_id, run_id=dag_run.run_id, task_id=point, map_index=-1, try_number=try_number
    )
    if facts.manual_kill is None:
        failed_ti = tis[facts.failed_task_id]
        failed_location = storage.location_for(
            dag_id=dag_run.dag_id,
            run_id=dag_run.run_id,
            task_id=failed_ti.task_id,
            map_index=-1,
            try_number=max(failed_ti.try_number or 1, 1),
        )
        try:
            facts.manual_kill = killed_marker(failed_location)
        except StateStorageError as err:
            facts.state_error_code, facts.state_error = STATE_UNREACHABLE, f"{where}: {err}"
            return facts
    try:
        facts.chain = load_chain(location)
    except StateStorageError as err:
        facts.state_error_code = STATE_UNREACHABLE
        facts.state_error = f"{where}: the state folder cannot be reached: {err}. Try again when it is back."
        return facts
    except StateMissingError:
        capture_error = _capture_error(session, dag_run.dag_id, dag_run.run_id, point)
        if capture_error:
            facts.state_error_code = STATE_NOT_RECORDED
            facts.state_error = f"{where}: the state of task {point!r} was not recorded: {capture_error}"
        else:
            facts.state_error_code = STATE_MISSING
            facts.state_error = (
                f"{where}: no state file for task {point!r} (try {try_number}) at {location.url}; the task "
                "ran before resume was enabled, or the file was deleted."
            )
        return facts
    except StateError as err:
        facts.state_error_code = STATE_INVALID
        facts.state_error = f"{where}: {err}"
        return facts
    identity = facts.chain.head.identity
    if (identity.dag_id, identity.run_id, identity.task_id, identity.try_number) != (
        dag_run.dag_id,
        dag_run.run_id,
        point,
        try_number,
    ):
        facts.state_error_code = STATE_INVALID
        facts.state_error = (
            f"{where}: the state file at {location.url} belongs to another task attempt ({identity})."
        )
    return facts

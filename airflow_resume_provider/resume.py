"""
Creating the resumed run: one transaction, used by the REST API, the CLI, the UI and the scheduler.

The new run uses the latest DAG version; the tasks before the resume point are set to success with
their XComs restored from the state files; the resume point and later tasks are left to the scheduler.
The run id is deterministic, so a repeated or concurrent request finds the run already created.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from airflow_resume_provider import carry, compat, inputs, metrics, run_record
from airflow_resume_provider.exceptions import (
    BadRequestError,
    NotResumableError,
    ResumedWithOtherInputsError,
    ResumeError,
    RunIdTakenError,
    RunNotFoundError,
)
from airflow_resume_provider.facts import gather_facts
from airflow_resume_provider.models import InputChange, ResumePreview
from airflow_resume_provider.persisted import CONF_KEY, RETURN_KEY, XCOM_CAPTURE_ERROR, XCOM_STATE_REF
from airflow_resume_provider.resumability import KEPT_MAP_INDEX_STATES, RunFacts, decide
from airflow_resume_provider.state import storage
from airflow_resume_provider.tree import PendingTree, attachments, pending_children

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy.orm import Session

    from airflow_resume_provider.models import Plan, Verdict

log = logging.getLogger(__name__)

KIND_MANUAL = run_record.KIND_MANUAL
KIND_RETRY = run_record.KIND_RETRY


class ResumeOutcome(BaseModel):
    """The resumed run, created now or earlier: the service's result and the REST API's body."""

    model_config = ConfigDict(frozen=True)

    dag_id: str
    dag_run_id: str = Field(description="The resumed run.")
    created: bool
    source_run_id: str
    resume_task_id: str | None
    root_run_id: str
    resume_count: int
    changes: list[InputChange] = Field(
        default_factory=list, description="The inputs the resume changed (sensitive values masked)."
    )
    child_runs: list[dict[str, Any]] = Field(
        default_factory=list,
        description="The resumed child runs the new run's trigger steps wait for: each with dag_id, "
        "dag_run_id (the resumed child run), task_id and map_index (the step).",
    )

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)

    @classmethod
    def of(
        cls, dag_id: str, dag_run_id: str, record: run_record.RunRecord, *, created: bool
    ) -> ResumeOutcome:
        """The outcome for resumed run ``dag_run_id`` from the provider's record in it."""
        return cls(
            created=created,
            dag_id=dag_id,
            dag_run_id=dag_run_id,
            source_run_id=record.parent_run_id,
            resume_task_id=record.resumed_at_task_id,
            root_run_id=record.root_run_id,
            resume_count=record.resume_count,
            changes=list(record.changes),
            child_runs=[
                {"dag_id": a.dag_id, "dag_run_id": a.run_id, "task_id": a.task_id, "map_index": a.map_index}
                for a in record.attach
            ],
        )


def load_dag_and_run(session: Session, dag_id: str, run_id: str) -> tuple[Any, Any]:
    """The latest serialized DAG and the run; :class:`RunNotFoundError` names what is missing."""
    from airflow.models.dagbag import DBDagBag
    from airflow.models.dagrun import DagRun
    from sqlalchemy import select

    dag = DBDagBag().get_latest_version_of_dag(dag_id, session=session)
    if dag is None:
        raise RunNotFoundError(f"DAG {dag_id!r} not found.")
    dag_run = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
    if dag_run is None:
        raise RunNotFoundError(f"DAG {dag_id!r} has no run {run_id!r}.")
    return dag, dag_run


def assess(
    session: Session,
    dag_id: str,
    run_id: str,
    *,
    from_task_id: str | None = None,
    rerun_children: bool = False,
) -> Verdict:
    """The verdict for a run (read only); ``rerun_children``: as a resume that asks for it would see it."""
    dag, dag_run = load_dag_and_run(session, dag_id, run_id)
    return decide(
        gather_facts(session, dag, dag_run, from_task_id=from_task_id, rerun_children=rerun_children)
    )


def assess_with_facts(
    session: Session,
    dag_id: str,
    run_id: str,
    *,
    from_task_id: str | None = None,
    rerun_children: bool = False,
) -> tuple[Verdict, RunFacts, dict[str, str | None], Any]:
    """The verdict, the facts behind it, the run's task states and the DAG (for the Resume page)."""
    from airflow.models.taskinstance import TaskInstance
    from sqlalchemy import select

    dag, dag_run = load_dag_and_run(session, dag_id, run_id)
    facts = gather_facts(session, dag, dag_run, from_task_id=from_task_id, rerun_children=rerun_children)
    states: dict[str, str | None] = {}
    for task_id, state in session.execute(
        select(TaskInstance.task_id, TaskInstance.state).where(
            TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id
        )
    ):
        # A mapped task's state is the most telling of its indexes' (failed before anything else).
        shown = str(state) if state is not None else None
        if task_id not in states or _STATE_RANK.get(shown or "", 1) > _STATE_RANK.get(
            states[task_id] or "", 1
        ):
            states[task_id] = shown
    return decide(facts), facts, states, dag


def preview(
    session: Session,
    dag_id: str,
    run_id: str,
    *,
    from_task_id: str | None = None,
    overrides: inputs.InputOverrides | None = None,
    rerun_children: bool = False,
) -> ResumePreview:
    """
    A dry run of :func:`resume`: the verdict, the resumed run's run-level params and what changes.
    Creates nothing.

    :raises RunNotFoundError: unknown DAG or run.
    :raises InputChangesDisabledError: inputs may not be changed on this deployment.
    :raises InputsInvalidError: an override is refused.
    :raises ResumedWithOtherInputsError: the run was already resumed with other inputs.
    """
    if overrides:
        inputs.check_allowed()
    dag, dag_run = load_dag_and_run(session, dag_id, run_id)
    if overrides:
        inputs.check_names(dag, overrides)
    facts = gather_facts(
        session, dag, dag_run, from_task_id=from_task_id, overrides=overrides, rerun_children=rerun_children
    )
    if facts.resumed_run_id is not None and overrides:
        _existing(session, dag_id, run_id, facts.resumed_run_id, overrides)  # other inputs: 409, as a resume
    verdict = decide(facts)
    if facts.inputs is not None:
        params, changes = facts.inputs.params, facts.inputs.changes
    else:
        params, changes = facts.original_params or {}, []
    return ResumePreview(verdict=verdict, params=inputs.shown_params(dag, params), changes=changes)


#: How telling a map index's state is for its mapped task as a whole (unlisted states: 1).
_STATE_RANK = {"success": 0, "skipped": 0, "upstream_failed": 2, "failed": 3}


def resume(
    session: Session,
    dag_id: str,
    run_id: str,
    *,
    from_task_id: str | None = None,
    user: str | None = None,
    triggered_by: str = "rest_api",
    delay_seconds: float = 0,
    kind: run_record.Kind = KIND_MANUAL,
    retry_attempt: int | None = None,
    note: str | None = None,
    parent_failure: list[Any] | None = None,
    full_rerun: bool = False,
    facts: RunFacts | None = None,
    overrides: inputs.InputOverrides | None = None,
    rerun_children: bool = False,
    may_trigger: Callable[[str], bool] | None = None,
    parent_tree_run: run_record.TreeRun | None = None,
) -> ResumeOutcome:
    """
    Resume a failed run, or return the run that already resumed it. Commits ``session``.

    With ``full_rerun`` every task runs again, from the run's recorded context (``on_retry: false``).
    ``facts`` gathered by the caller in this session just before are used as they are, not gathered again.
    When the resume point triggers a child run that failed, the child is resumed first (each run in its
    own transaction, children before parents) and the step waits for the resumed child (``tree.py``).

    :param retry_attempt: for automatic retries, the attempt number the new run is; otherwise the
        count is inherited from the failed run.
    :param note: the new run's note; default "Resumed from <run> at <task>".
    :param parent_failure: for automatic retries, the failure being retried (task, type, message).
    :param overrides: changed inputs (run-level params, top-level conf keys); a person's resume only.
    :param rerun_children: a child run that cannot be resumed is rerun in full instead of refusing.
    :param may_trigger: whether the user may trigger runs of a DAG (None: anyone may), asked for each
        child DAG whose run would be resumed.
    :param parent_tree_run: the resumed parent run whose trigger step waits for this run.

    :raises RunNotFoundError: unknown DAG or run.
    :raises NotResumableError: the verdict refuses; its reason says why.
    :raises ChildPermissionError: a child run would be resumed of a DAG the user may not trigger.
    :raises InputChangesDisabledError: inputs may not be changed on this deployment.
    :raises InputsInvalidError: an override is refused (its name, or a value the params refuse).
    :raises ResumedWithOtherInputsError: the run was already resumed with other inputs.
    """
    from airflow_resume_provider import tree_resume

    if overrides:
        if kind != KIND_MANUAL or full_rerun:
            raise BadRequestError(
                f"DAG {dag_id!r}, run {run_id!r}: automatic retries and full reruns never change inputs."
            )
        inputs.check_allowed()
    options = _Options(
        from_task_id=from_task_id,
        user=user,
        triggered_by=triggered_by,
        delay_seconds=delay_seconds,
        kind=kind,
        retry_attempt=retry_attempt,
        note=note,
        parent_failure=parent_failure,
        full_rerun=full_rerun,
        rerun_children=rerun_children,
        parent_tree_run=parent_tree_run,
        overrides=overrides,
    )
    # Children first: a pass that finds child runs to resume releases the run's lock, resumes them
    # (each under its own lock), then looks again; a concurrent request may have resumed them meanwhile.
    for _ in range(_TREE_PASSES):
        result = _resume_pass(session, dag_id, run_id, options, facts)
        if isinstance(result, ResumeOutcome):
            return result
        facts = None
        session.rollback()  # nothing written: the next pass reads what the children's commits left
        tree_resume.resume_children(
            session,
            dag_id,
            result,
            user=user,
            triggered_by=triggered_by,
            kind=kind,
            delay_seconds=delay_seconds,
            rerun_children=rerun_children,
            may_trigger=may_trigger,
            resume=resume,
        )
    raise ResumeError(
        f"DAG {dag_id!r}, run {run_id!r}: its child runs were resumed, but the run still waits for child runs "
        "to be resumed. Try again."
    )


#: How many times one request looks for child runs to resume before giving up (the second pass finds
#: the children resumed; a third covers a child a concurrent request resumed at the same moment).
_TREE_PASSES = 3


@dataclass(frozen=True)
class _Options:
    from_task_id: str | None
    user: str | None
    triggered_by: str
    delay_seconds: float
    kind: run_record.Kind
    retry_attempt: int | None
    note: str | None
    parent_failure: list[Any] | None
    full_rerun: bool
    rerun_children: bool
    parent_tree_run: run_record.TreeRun | None
    overrides: inputs.InputOverrides | None


def _resume_pass(
    session: Session, dag_id: str, run_id: str, options: _Options, facts: RunFacts | None
) -> ResumeOutcome | PendingTree:
    """Create the resumed run, or return the children to resume first (and the run's id to be)."""
    from sqlalchemy.exc import IntegrityError

    # One request at a time per failed run in this process, waiting before the session holds a
    # connection: concurrent requests then find the created run instead of contending for the
    # database (other processes are kept out by the deterministic run id).
    with _lock_for(dag_id, run_id):
        started = time.monotonic()
        dag, dag_run = load_dag_and_run(session, dag_id, run_id)
        overrides = options.overrides
        if overrides:
            inputs.check_names(dag, overrides)
        if facts is None or overrides:
            facts = gather_facts(
                session,
                dag,
                dag_run,
                from_task_id=options.from_task_id,
                full_rerun=options.full_rerun,
                rerun_children=options.rerun_children,
                overrides=overrides,
            )
        if facts.resumed_run_id is not None:
            return _existing(session, dag_id, run_id, facts.resumed_run_id, overrides)
        verdict = decide(facts)
        if not verdict.resumable:
            metrics.refused(verdict.reason_code)
            raise NotResumableError(verdict)
        assert facts.resume_task_id is not None
        own = run_record.check(dag_id, run_id, dag_run.conf)
        root, count = run_record.next_in_chain(run_id, own)
        new_run_id = run_record.resumed_run_id(dag_id, run_id, root, count)
        pending = pending_children(verdict.plan)
        if pending:
            return PendingTree(new_run_id=new_run_id, children=pending)
        try:
            record = _create_resumed_run(
                session,
                dag,
                dag_run,
                facts,
                verdict.plan,
                new_run_id=new_run_id,
                source_record=own.record,
                root=root,
                count=count,
                options=options,
            )
            _audit(
                session,
                dag_id,
                run_id,
                new_run_id,
                facts.resume_task_id,
                options.user,
                options.triggered_by,
                options.kind,
                record.changes,
            )
            session.commit()
        except IntegrityError:
            # A concurrent request created the same run first: that run is the answer.
            session.rollback()
            if not _run_exists(session, dag_id, new_run_id):
                raise
            return _existing(session, dag_id, run_id, new_run_id, overrides)
        except ResumeError:
            session.rollback()
            raise
        except Exception as err:
            session.rollback()
            log.exception("Creating the resumed run of %s of DAG %s failed", run_id, dag_id)
            raise ResumeError(
                f"DAG {dag_id!r}, run {run_id!r}: creating the resumed run failed: {storage.describe_error(err)}"
            ) from err
        log.info("Resumed run %s of DAG %s at %s as %s", run_id, dag_id, facts.resume_task_id, new_run_id)
        metrics.created(options.kind)
        metrics.create_duration(time.monotonic() - started)
        return ResumeOutcome.of(dag_id, new_run_id, record, created=True)


_LOCKS = [threading.Lock() for _ in range(64)]


def _lock_for(dag_id: str, run_id: str) -> threading.Lock:
    # Never held while another run's lock is taken (children are resumed between passes), so two
    # runs sharing a lock cannot deadlock.
    return _LOCKS[hash((dag_id, run_id)) % len(_LOCKS)]


def _run_after(now: datetime, delay_seconds: float) -> datetime:
    """
    When the run may start. Without a delay: the second before now's whole second.

    The scheduler starts queued runs with ``run_after <= now()`` in the database. SQLite's now() has
    whole seconds and is compared as text with a stored ``... 12:00:05.000000``, which is greater
    than ``... 12:00:05``: a run_after within the current second would wait for the next one.
    """
    if delay_seconds <= 0:
        return now.replace(microsecond=0) - timedelta(seconds=1)
    return now + timedelta(seconds=delay_seconds)


#: Audit-log event of every resumed run the provider creates (REST, UI, CLI and automatic retries).
AUDIT_EVENT = "resume_created"


def _audit(
    session: Session,
    dag_id: str,
    run_id: str,
    new_run_id: str,
    resume_task_id: str | None,
    user: str | None,
    triggered_by: str,
    kind: str,
    changes: list[InputChange] | None = None,
) -> None:
    """Record the created run in Airflow's audit log, in the transaction that creates it (with the
    inputs it changed, sensitive values masked)."""
    import json

    from airflow.models.log import Log

    session.add(
        Log(
            event=AUDIT_EVENT,
            owner=user or triggered_by,
            dag_id=dag_id,
            run_id=run_id,
            task_id=resume_task_id,
            extra=json.dumps(
                {
                    "new_run_id": new_run_id,
                    "kind": kind,
                    "via": triggered_by,
                    **({"changes": [c.model_dump(mode="json") for c in changes]} if changes else {}),
                },
                default=str,
            ),
        )
    )


def _run_exists(session: Session, dag_id: str, run_id: str) -> bool:
    from airflow.models.dagrun import DagRun
    from sqlalchemy import select

    return (
        session.scalar(select(DagRun.id).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)) is not None
    )


def _existing(
    session: Session,
    dag_id: str,
    source_run_id: str,
    new_run_id: str,
    overrides: inputs.InputOverrides | None = None,
) -> ResumeOutcome:
    """
    The outcome for a resumed run the provider created earlier (its signed record says so).

    :raises ResumedWithOtherInputsError: the request changes inputs that run does not have.
    """
    from airflow.models.dagrun import DagRun
    from sqlalchemy import select

    conf = session.scalar(select(DagRun.conf).where(DagRun.dag_id == dag_id, DagRun.run_id == new_run_id))
    found = run_record.check(dag_id, new_run_id, conf).record
    if found is None or found.parent_run_id != source_run_id:
        raise RunIdTakenError(
            f"DAG {dag_id!r}, run {source_run_id!r}: the run {new_run_id!r} was not created by this provider "
            "to resume it."
        )
    if overrides and not inputs.same_as(conf, overrides, found.params):
        raise ResumedWithOtherInputsError(
            f"DAG {dag_id!r}, run {source_run_id!r} was already resumed as {new_run_id!r} with other inputs; "
            "a run is resumed once. Resume that run instead (its inputs are its params now), or trigger a "
            "new run."
        )
    return ResumeOutcome.of(dag_id, new_run_id, found, created=False)


def _skipped_tasks(session: Session, dag_run: Any) -> set[str]:
    from airflow.models.taskinstance import TaskInstance
    from sqlalchemy import select

    return set(
        session.scalars(
            select(TaskInstance.task_id).where(
                TaskInstance.dag_id == dag_run.dag_id,
                TaskInstance.run_id == dag_run.run_id,
                TaskInstance.state == "skipped",
            )
        )
    )


def _restore_tasks(
    session: Session, dag: Any, source: Any, new_run: Any, chain: Any, plan: Plan, now: datetime
) -> None:
    """Set the tasks the plan restores to success (skipped if they were) with their XComs, in chain
    order: a mapped task's indexes are created from its upstream's restored map length first."""
    from airflow.utils.state import TaskInstanceState

    restored = chain.restored_tasks()
    skipped = _skipped_tasks(session, source)
    structure = chain.structure
    tis_by_task: dict[str, list[Any]] = {}
    for ti in new_run.get_task_instances(session=session):
        tis_by_task.setdefault(ti.task_id, []).append(ti)
    xcoms: list[tuple[str, int, str, Any]] = []
    steps = plan.tasks
    for position, step in enumerate(steps):
        if step.action != "restored":
            continue
        task_id = step.task_id
        task = restored.get(task_id)
        if task is None:
            continue
        tis = tis_by_task.get(task_id, [])
        if task_id in structure.mapped:
            session.flush()  # the upstream's map length, written just before (no autoflush in Airflow)
            tis = compat.expand_mapped_task(dag, task_id, new_run.run_id, session=session)
            _check_map_count(task_id, len(tis), task.map_count)
        for ti in tis:
            # A skipped task stays skipped, so trigger rules downstream see what they saw originally.
            ti.state = TaskInstanceState.SKIPPED if task_id in skipped else TaskInstanceState.SUCCESS
            ti.start_date = ti.end_date = now
            compat.set_note_of_new_task_instance(ti, f"Not run: restored from {source.run_id} by resume")
        xcoms += [(task_id, x.map_index, x.key, x.value) for x in task.xcoms]
        # Only a mapped step right after this one can expand over its result (the DAG is a chain).
        if position + 1 < len(steps) and steps[position + 1].mapped:
            for xcom in task.xcoms:
                if xcom.key == RETURN_KEY and xcom.map_index == -1:
                    compat.record_map_length(session, dag, task_id, new_run.run_id, xcom.value)
        if task.state_ref is not None:
            # The same announcement the task made when it ran, so later captures link to its state.
            ref = task.state_ref
            announcement = {
                "path": ref.path,
                "digest": ref.digest,
                "xcom_keys": task.extra_keys,
                "map_index": ref.map_index,
            }
            xcoms.append((task_id, ref.map_index, XCOM_STATE_REF, announcement))
    session.flush()
    compat.add_xcoms_to_new_run(session, new_run, xcoms)


def _check_map_count(task_id: str, count: int, recorded: int | None) -> None:
    if recorded is not None and count != recorded:
        raise ResumeError(
            f"Mapped task {task_id!r} would now run as {count} map indexes, but the failed run ran it as "
            f"{recorded}: a resume keeps the recorded number. Trigger a new run instead."
        )


def _restore_finished_map_indexes(
    session: Session,
    dag: Any,
    source: Any,
    new_run: Any,
    point: str,
    map_states: list[tuple[int, str]],
    now: datetime,
) -> None:
    """
    A mapped resume point: create its map indexes, and keep those that succeeded (or skipped) in the
    failed run as they were, with their XComs; only the others run again.

    No later task recorded what those indexes returned, so their XComs come from the failed run's rows.
    """
    from airflow.models.xcom import XComModel
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select

    tis = compat.expand_mapped_task(dag, point, new_run.run_id, session=session)
    _check_map_count(point, len(tis), len(map_states))
    kept = {index: state for index, state in map_states if state in KEPT_MAP_INDEX_STATES}
    for ti in tis:
        if ti.map_index in kept:
            ti.state = TaskInstanceState(kept[ti.map_index])
            ti.start_date = ti.end_date = now
            compat.set_note_of_new_task_instance(
                ti, f"Not run: map index {kept[ti.map_index]} in {source.run_id}, kept by resume"
            )
    session.flush()
    rows = session.execute(
        select(XComModel.key, XComModel.value, XComModel.map_index).where(
            XComModel.dag_id == dag.dag_id,
            XComModel.run_id == source.run_id,
            XComModel.task_id == point,
            XComModel.map_index.in_(sorted(kept)),
        )
    ).all()
    compat.add_xcoms_to_new_run(
        session,
        new_run,
        [(point, index, key, value) for key, value, index in rows if key != XCOM_CAPTURE_ERROR],
    )


def _create_resumed_run(
    session: Session,
    dag: Any,
    source: Any,
    facts: RunFacts,
    plan: Plan,
    *,
    new_run_id: str,
    source_record: run_record.RunRecord | None,
    root: str,
    count: int,
    options: _Options,
) -> run_record.RunRecord:
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType

    chain = facts.chain
    point = facts.resume_task_id
    assert point is not None
    now = datetime.now(timezone.utc)
    retry_attempt = options.retry_attempt
    if retry_attempt is None:
        retry_attempt = source_record.retry_attempt if source_record is not None else 0
    context = _recorded_context(source, facts.run_params) if facts.full_rerun else _state_context(chain)
    merged = facts.inputs
    if merged is not None:
        context["params"] = merged.params
    record = run_record.RunRecord(
        parent_run_id=source.run_id,
        root_run_id=root,
        resume_count=count,
        resumed_at_task_id=point,
        kind=options.kind,
        retry_attempt=retry_attempt,
        parent_failure=options.parent_failure,
        parent_lineage=_parent_lineage(session, source, [s.task_id for s in plan.tasks if s.action == "run"]),
        changes=merged.changes if merged is not None else [],
        attach=attachments(plan),
        parent_tree_run=options.parent_tree_run,
        **context,
    )
    original_conf = {k: v for k, v in (source.conf or {}).items() if k != CONF_KEY}
    if merged is not None:
        original_conf = merged.conf
    note = inputs.note_text(options.note or f"Resumed from {source.run_id} at {point}", record.changes)
    if record.attach:
        note += "; waits for " + ", ".join(f"{a.dag_id} run {a.run_id}" for a in record.attach)
    new_run = compat.create_dagrun(
        dag,
        run_id=new_run_id,
        logical_date=None,
        data_interval=None,
        run_after=_run_after(now, options.delay_seconds),
        conf={**original_conf, CONF_KEY: run_record.sign(dag.dag_id, new_run_id, record)},
        run_type=DagRunType.MANUAL,
        triggered_by=DagRunTriggeredByType(options.triggered_by),
        triggering_user_name=options.user,
        state=DagRunState.QUEUED,
        note=note,
        session=session,
    )
    if any(step.action == "restored" for step in plan.tasks):
        _restore_tasks(session, dag, source, new_run, chain, plan, now)
    if facts.point_map_states:
        _restore_finished_map_indexes(session, dag, source, new_run, point, facts.point_map_states, now)
    if facts.settings is not None and facts.settings.carry_task_state:
        # The tasks that run again reattach to their external jobs instead of submitting new ones.
        carry.copy_entries(session, source, new_run, [s.task_id for s in plan.tasks if s.action == "run"])
    session.flush()
    return record


#: States of a task instance that ran (and so had OpenLineage events) in a finished run.
_RAN_STATES = ("success", "failed", "skipped")


def _parent_lineage(session: Session, source: Any, run_task_ids: list[str]) -> run_record.ParentLineage:
    """What the failed run's OpenLineage run ids derive from, for the tasks that run again (one query)."""
    from airflow.models.taskinstance import TaskInstance
    from sqlalchemy import select

    tries = session.execute(
        select(TaskInstance.task_id, TaskInstance.map_index, TaskInstance.try_number)
        .where(
            TaskInstance.dag_id == source.dag_id,
            TaskInstance.run_id == source.run_id,
            TaskInstance.task_id.in_(run_task_ids),
            TaskInstance.state.in_(_RAN_STATES),
            TaskInstance.try_number > 0,
        )
        .order_by(TaskInstance.task_id, TaskInstance.map_index)
    ).all()

    def iso(value: Any) -> str | None:
        return None if value is None else value.isoformat()

    return run_record.ParentLineage(
        logical_date=iso(source.logical_date),
        run_after=iso(source.run_after),
        clear_number=int(getattr(source, "clear_number", 0) or 0),
        tries=[(task_id, int(map_index), int(try_number)) for task_id, map_index, try_number in tries],
    )


def _state_context(chain: Any) -> dict[str, Any]:
    """The original run's context as the resume point's state file recorded it."""
    inputs = chain.head.inputs
    return {
        "logical_date": inputs.logical_date,
        "data_interval_start": inputs.data_interval_start,
        "data_interval_end": inputs.data_interval_end,
        "params": inputs.run_params if inputs.run_params is not None else inputs.params,
        "source": chain.head_ref.model_dump(),
    }


def _recorded_context(source: Any, run_params: dict[str, Any]) -> dict[str, Any]:
    """The original run's context as the metadata DB recorded it (a full rerun reads no state file)."""
    return {
        "logical_date": compat.iso_or_none(source.logical_date),
        "data_interval_start": compat.iso_or_none(source.data_interval_start),
        "data_interval_end": compat.iso_or_none(source.data_interval_end),
        "params": run_params,
        "source": None,
    }

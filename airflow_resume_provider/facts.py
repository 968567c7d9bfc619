"""
Collecting the facts a verdict depends on, from the metadata DB and the state files.

Only facts the provider can vouch for are used: a run's ``__resume__`` conf entry counts only when
the provider signed it for that run (:mod:`airflow_resume_provider.run_record`), and a state link is only
followed into a configured folder, to the file of the expected task of the run or the runs it was
resumed from (:class:`~airflow_resume_provider.state.chain.ChainScope`).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from airflow_resume_provider import carry, compat, conf, retention, run_record
from airflow_resume_provider.display import shortened
from airflow_resume_provider.exceptions import (
    NonLinearDagError,
    ProviderConfigError,
    ResumeConfigError,
    RunIdTakenError,
    SigningUnavailableError,
    StateError,
    StateFolderUnsupportedError,
    StateMissingError,
    StateStorageError,
)
from airflow_resume_provider.models import ReasonCode
from airflow_resume_provider.persisted import (
    CONF_KEY,
    PARAM_NAME,
    STAGE_CAPTURE,
    XCOM_CAPTURE_ERROR,
    XCOM_STATE_REF,
)
from airflow_resume_provider.resumability import RunFacts
from airflow_resume_provider.resume_param import settings_for
from airflow_resume_provider.state import storage
from airflow_resume_provider.state.chain import ChainScope, load_chain
from airflow_resume_provider.structure import linear_order

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from airflow_resume_provider.inputs import InputOverrides
    from airflow_resume_provider.state.paths import StateLocation

#: How many runs back a lineage is followed at most.
MAX_LINEAGE = 1000


def shown(value: Any, limit: int = 100) -> str:
    """A user-supplied value for a message, quoted and bounded."""
    return shortened(repr(value), limit)


# --- the run's own record and lineage ---------------------------------------------------------------


def _run_conf(session: Session, dag_id: str, run_id: str) -> tuple[bool, Any]:
    from airflow.models.dagrun import DagRun
    from sqlalchemy import select

    row = session.execute(select(DagRun.conf).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)).first()
    return (row is not None, row[0] if row is not None else None)


def existing_resumed_run(
    session: Session, dag_id: str, run_id: str, own: run_record.RunRecordCheck
) -> str | None:
    """
    The run the provider created to resume ``run_id``, if any.

    :raises RunIdTakenError: the id is taken by a run the provider did not create (nor could have:
        the id is tagged with the deployment's secret), so it cannot be used.
    """
    root, count = run_record.next_in_chain(run_id, own)
    new_run_id = run_record.resumed_run_id(dag_id, run_id, root, count)
    exists, new_run_conf = _run_conf(session, dag_id, new_run_id)
    if not exists:
        return None
    found = run_record.check(dag_id, new_run_id, new_run_conf)
    if found.record is None or found.record.parent_run_id != run_id:
        raise RunIdTakenError(
            f"DAG {dag_id!r}, run {run_id!r}: the run id {new_run_id!r} reserved for its resumed run is taken "
            "by a run this provider did not create for it. Delete that run to resume this one."
        )
    return new_run_id


def lineage_run_ids(session: Session, dag_id: str, run_id: str, own: run_record.RunRecordCheck) -> list[str]:
    """The run and every run it was resumed from, newest first, following signed records only."""
    ids = [run_id]
    current = own
    while current.record is not None and len(ids) < MAX_LINEAGE:
        parent = current.record.parent_run_id
        if parent in ids:
            break
        ids.append(parent)
        exists, parent_conf = _run_conf(session, dag_id, parent)
        current = (
            run_record.check_quietly(dag_id, parent, parent_conf) if exists else run_record.RunRecordCheck()
        )
    if own.record is not None and own.record.root_run_id not in ids:
        ids.append(own.record.root_run_id)
    return ids


def chain_scope(session: Session, dag_id: str, run_id: str, own: run_record.RunRecordCheck) -> ChainScope:
    """Where the state files of the run and of the runs it was resumed from may lie."""
    return ChainScope(
        dag_id=dag_id,
        run_ids=lineage_run_ids(session, dag_id, run_id, own),
        roots=storage.roots(),
        templates=known_log_templates(session),
    )


def known_log_templates(session: Session) -> list[str]:
    """Every ``log_filename_template`` this deployment has used (Airflow records each), newest first."""
    templates = [conf.log_filename_template()]
    for _, filename in reversed(compat.log_templates(session)):
        if filename not in templates:
            templates.append(filename)
    return templates


# --- manual kills -----------------------------------------------------------------------------------


def _json_object(text: Any) -> dict[str, Any]:
    try:
        value = json.loads(text) if isinstance(text, str) else text
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _failed_entities(event: str, extra: dict[str, Any], row_run_id: str | None, row_task_id: str | None):
    """``(dag_id or None, run_id, task_id or None)`` of what one audit-log row asked to set to failed."""
    if event in ("patch_task_instance", "patch_dag_run"):
        key = "new_state" if event == "patch_task_instance" else "state"
        if extra.get(key) == "failed":
            yield None, row_run_id, (row_task_id if event == "patch_task_instance" else None)
        return
    actions = extra.get("actions")
    for action in actions if isinstance(actions, list) else []:
        entities = action.get("entities") if isinstance(action, dict) else None
        for entity in entities if isinstance(entities, list) else []:
            if not isinstance(entity, dict):
                continue
            state = entity.get("new_state") if event == "bulk_task_instances" else entity.get("state")
            if state != "failed":
                continue
            run_id = entity.get("dag_run_id") or entity.get("run_id") or row_run_id
            task_id = entity.get("task_id") if event == "bulk_task_instances" else None
            yield entity.get("dag_id"), run_id, task_id


def _failed_on_its_own(session: Session, ti: Any) -> bool:
    """Whether Airflow recorded the attempt's failure as the task's own (the Execution API's or the
    scheduler's audit row for exactly this attempt), not as a state set through the API."""
    from airflow.models.log import Log
    from sqlalchemy import select

    row = session.scalar(
        select(Log.id)
        .where(
            Log.dag_id == ti.dag_id,
            Log.task_id == ti.task_id,
            Log.run_id == ti.run_id,
            Log.map_index == ti.map_index,
            Log.try_number == ti.try_number,
            Log.event.in_(compat.OWN_FAILURE_EVENTS),
        )
        .limit(1)
    )
    return row is not None


def manual_kill_from_audit_log(session: Session, dag_id: str, run_id: str, failed_ti: Any) -> str | None:
    """
    Why the run counts as stopped by hand, per Airflow's audit log, or None.

    Airflow writes a request's row before it checks the request, so a row is only a request. It counts
    when it matches a state change that happened: the failed attempt ended without Airflow recording a
    failure of its own (a "set to failed" through the API is the one way to fail without such a record),
    and the request was made while the attempt ran, before it ended (the API server sets the end date
    just after it writes the row). A refused request changes nothing, so whenever it was made, the
    attempt either ended on its own (recorded) or is still the one a person stopped.
    """
    from airflow.models.log import Log
    from sqlalchemy import select

    started, ended = failed_ti.start_date, failed_ti.end_date
    if started is None or ended is None or _failed_on_its_own(session, failed_ti):
        return None
    columns = (Log.id, Log.event, Log.owner, Log.dag_id, Log.run_id, Log.task_id, Log.extra, Log.dttm)
    # Each lookup is bounded by what concerns this attempt, never by the DAG's whole history: requests
    # whose path names the failed task or the run, by equality on Airflow's (dag_id, task_id, run_id)
    # index (one query per task_id: an OR of the two would use only the index's dag_id); and bulk
    # requests, which may name the run only in their body, by event and by time.
    queries = [
        select(*columns).where(
            Log.dag_id.in_([dag_id, "~"]),
            task,
            Log.run_id == run_id,
            Log.event.in_(compat.MANUAL_STATE_EVENTS),
        )
        for task in (Log.task_id == failed_ti.task_id, Log.task_id.is_(None))
    ]
    queries.append(select(*columns).where(Log.event.in_(compat.BULK_STATE_EVENTS)))
    queries = [query.where(Log.dttm >= started, Log.dttm <= ended) for query in queries]
    rows = {row.id: row for query in queries for row in session.execute(query)}
    # The request closest to the change is the one that made it.
    for row in sorted(rows.values(), key=lambda r: (r.dttm, r.id), reverse=True):
        if row.dag_id not in (dag_id, "~"):
            continue
        for entity_dag, entity_run, entity_task in _failed_entities(
            row.event, _json_object(row.extra), row.run_id, row.task_id
        ):
            if (entity_dag or row.dag_id) != dag_id or entity_run != run_id:
                continue
            if entity_task not in (None, failed_ti.task_id):
                continue
            what = f"task {entity_task!r}" if entity_task else "the run"
            return (
                f"DAG {dag_id!r}, run {run_id!r}: {what} was set to failed by {row.owner or 'a user'} "
                f"({row.event} at {row.dttm}); a run stopped on purpose is never resumed. Trigger a new run "
                "instead."
            )
    return None


def attempt_identity(dag_run: Any, ti: Any) -> dict[str, Any]:
    """The task attempt a kill marker must name to count for ``ti``."""
    return {
        "dag_id": dag_run.dag_id,
        "run_id": dag_run.run_id,
        "task_id": ti.task_id,
        "map_index": -1 if ti.map_index is None else ti.map_index,
        "try_number": ti.try_number,
    }


def kill_evidence(facts: RunFacts, location: StateLocation, dag_run: Any, ti: Any) -> None:
    """Set ``facts.manual_kill`` from the failed attempt's kill marker; a marker ignored is a warning."""
    from airflow_resume_provider.manual_kill import killed_marker

    reason, warning = killed_marker(location, attempt_identity(dag_run, ti))
    facts.manual_kill = facts.manual_kill or reason
    if warning:
        facts.warnings.append(f"DAG {facts.dag_id!r}, run {facts.run_id!r}: {warning}")


# --- state ------------------------------------------------------------------------------------------


def _capture_error(
    session: Session, dag_id: str, run_id: str, task_id: str, map_index: int = -1
) -> str | None:
    value = _xcom(session, dag_id, run_id, task_id, XCOM_CAPTURE_ERROR, map_index)
    if value is None:
        return None
    return str(value.get("reason")) if isinstance(value, dict) else str(value)


def _incomplete_state(
    session: Session, dag_id: str, run_id: str, task_id: str, map_index: int = -1
) -> str | None:
    """Why the task's last attempt said its state is incomplete (e.g. the XCom backend refused its
    announcement), or None: a file found for it then does not hold everything the task passes on."""
    value = _xcom(session, dag_id, run_id, task_id, XCOM_CAPTURE_ERROR, map_index)
    if isinstance(value, dict) and value.get("stage") == STAGE_CAPTURE:
        return str(value.get("reason"))
    return None


def _xcom(session: Session, dag_id: str, run_id: str, task_id: str, key: str, map_index: int = -1) -> Any:
    from airflow.models.xcom import XComModel

    value = session.scalar(
        XComModel.get_many(
            run_id=run_id, key=key, task_ids=task_id, dag_ids=dag_id, map_indexes=map_index
        ).with_only_columns(XComModel.value)
    )
    return compat.stored_xcom_json(value)


def state_location(
    session: Session, dag_run: Any, ti: Any, scope: ChainScope
) -> tuple[StateLocation, str, int]:
    """
    Where the state of ``ti``'s last attempt was written: the reference the task announced (checked
    against ``scope``), else the path the run's own log template gives in the configured folder.

    :return: the location, the run and the try number the file must belong to (0: any try).
    :raises StateError: the announced reference is refused.
    """
    map_index = -1 if ti.map_index is None else ti.map_index
    announced = _xcom(session, dag_run.dag_id, dag_run.run_id, ti.task_id, XCOM_STATE_REF, map_index)
    try_number = max(ti.try_number or 1, 1)
    if isinstance(announced, dict) and "path" in announced:
        location, run_id, file_try = scope.resolve(announced["path"], ti.task_id, map_index)
        if run_id == dag_run.run_id and file_try not in (0, try_number):
            raise StateError(
                f"the state reference of task {ti.task_id!r} names try {file_try}, but its last try is "
                f"{try_number}"
            )
        return location, run_id, file_try
    location = storage.location_for(
        dag_id=dag_run.dag_id,
        run_id=dag_run.run_id,
        task_id=ti.task_id,
        map_index=map_index,
        try_number=try_number,
        template=compat.run_log_template(session, dag_run),
    )
    return location, dag_run.run_id, try_number


def announced_locations(session: Session, dag_run: Any, scope: ChainScope) -> list[StateLocation]:
    """Where the run's tasks announced their state files (one query), those ``scope`` allows: where a
    state chain of the run is expected to lead, so its files can be read side by side."""
    from airflow.models.xcom import XComModel
    from sqlalchemy import select

    # By the run's id, the leading column of the XCom table's primary key: one run's rows are read
    # however many runs there are.
    rows = session.execute(
        select(XComModel.task_id, XComModel.map_index, XComModel.value).where(
            XComModel.dag_run_id == dag_run.id, XComModel.key == XCOM_STATE_REF
        )
    )
    locations = []
    for task_id, map_index, value in rows:
        announced = _json_object(value)
        try:
            locations.append(scope.resolve(announced.get("path"), task_id, map_index)[0])
        except StateError:
            continue
    return locations


def _failed_by_itself(chain: Any, failed_location: StateLocation, scope: ChainScope, is_head: bool) -> bool:
    """Whether the failed attempt recorded its own error (the worker writes it before the task fails)."""
    if is_head:
        return chain.head.failure is not None
    try:
        loaded = storage.load(failed_location, where=scope.display(failed_location.url))
    except StateError:
        return False
    return loaded is not None and loaded[0].failure is not None


def _full_rerun_facts(
    session: Session, dag: Any, dag_run: Any, facts: RunFacts, failed_ti: Any, own: run_record.RunRecordCheck
) -> RunFacts:
    """
    The facts of a full rerun: the run's record in the metadata DB (its logical date, data interval and
    conf, and the DAG version it ran with) is all it needs. The failed attempt's state file is read
    when it can be, for the failure and the evidence of a manual kill; without it the rerun goes ahead.
    """
    from airflow.models.dagbag import DBDagBag

    where = f"DAG {facts.dag_id!r}, run {facts.run_id!r}"
    facts.full_rerun = True
    if facts.current_order is not None:
        facts.resume_task_id = facts.current_order[0].task_id
    facts.state_expired = retention.state_expired(where, dag_run.end_date)
    if facts.state_expired:
        return facts
    ran_with = DBDagBag().get_dag_for_run(dag_run, session=session)
    if ran_with is not None:
        try:
            facts.ran_order = linear_order(ran_with)
        except NonLinearDagError:
            facts.ran_order = None
    requested_kill = manual_kill_from_audit_log(session, facts.dag_id, facts.run_id, failed_ti)
    failed_by_itself = False
    try:
        scope = chain_scope(session, facts.dag_id, facts.run_id, own)
        facts.roots = scope.roots
        location = state_location(session, dag_run, failed_ti, scope)[0]
        kill_evidence(facts, location, dag_run, failed_ti)
        facts.chain = load_chain(location, scope, hints=announced_locations(session, dag_run, scope))
        failed_by_itself = facts.chain.head.failure is not None
    except (StateError, ProviderConfigError) as err:
        facts.warnings.append(
            f"{where}: the state of the failed task {failed_ti.task_id!r} could not be read ({err}); a full "
            "rerun does not need it."
        )
    if facts.manual_kill is None and requested_kill is not None and not failed_by_itself:
        facts.manual_kill = requested_kill
    original_conf = {k: v for k, v in (dag_run.conf or {}).items() if k != CONF_KEY}
    facts.run_params = _run_params(ran_with if ran_with is not None else dag, original_conf)
    problem = params_problem(dag, original_conf, facts.run_params)
    if problem:
        facts.params_error = (
            f"{where}: the DAG's params no longer accept the original run's values: {problem}. A rerun "
            "replays the original inputs: make the params accept them again, or trigger a new run."
        )
    if facts.settings is not None and facts.settings.carry_task_state and facts.current_order is not None:
        facts.carried = carry.carried_entries(session, dag_run, [t.task_id for t in facts.current_order])
    return facts


def _run_params(dag: Any, run_conf: dict[str, Any]) -> dict[str, Any]:
    """
    The run-level params a run of ``dag`` had with ``run_conf``: the DAG's, with the conf applied as
    Airflow applies it (``[core] dag_run_conf_overrides_params``, on by default).
    """
    values = dict(dag.params.dump())
    if conf.run_conf_overrides_params():
        values.update(run_conf)
    values = {k: v for k, v in values.items() if k not in (PARAM_NAME, CONF_KEY)}
    # Kept as JSON, as a state file keeps them: the rerun's signed record holds them.
    return json.loads(json.dumps(values, default=str))


def params_problem(dag: Any, run_conf: dict[str, Any], recorded: dict[str, Any]) -> str | None:
    """Why the DAG's current params refuse the original run's values (and conf), or None."""
    from airflow.exceptions import ParamValidationError

    from airflow_resume_provider.compat import validate_params_with

    values = {k: v for k, v in recorded.items() if k not in (PARAM_NAME, CONF_KEY) and k in dag.params}
    try:
        validate_params_with(dag.params, {**values, **run_conf})
    except (ParamValidationError, ValueError, TypeError) as err:
        return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return None


def map_count_changes(session: Session, dag: Any, dag_run: Any, facts: RunFacts) -> list[str]:
    """The mapped steps up to the resume point that the current DAG would map over another number of
    values than the run did (e.g. a literal ``.expand(x=[...])`` list that changed)."""
    from airflow_resume_provider.compat import mapped_count_in_run

    assert facts.chain is not None and facts.resume_task_id is not None
    recorded = {
        t.task_id: t.map_count for t in facts.chain.restored_tasks().values() if t.map_count is not None
    }
    if facts.point_map_states:
        recorded[facts.resume_task_id] = len(facts.point_map_states)
    changes = []
    for task_id, count in recorded.items():
        task = dag.task_dict.get(task_id)
        if task is None or not getattr(task, "is_mapped", False):
            continue  # told as a structure change already
        now = mapped_count_in_run(dag, task_id, dag_run.run_id, session=session)
        if now is not None and now != count:
            changes.append(f"task {task_id!r} now maps over {now} values; the run mapped it over {count}")
    return changes


# --- all together -----------------------------------------------------------------------------------


def gather_facts(
    session: Session,
    dag: Any,
    dag_run: Any,
    *,
    from_task_id: str | None = None,
    full_rerun: bool = False,
    overrides: InputOverrides | None = None,
    rerun_children: bool = False,
    depth: int = 0,
) -> RunFacts:
    """
    Collect the facts for ``dag_run`` of ``dag`` (the latest serialized version): for a resume at the
    failed task (or ``from_task_id``), or, with ``full_rerun``, for a rerun of every task.

    With ``overrides`` (changed inputs), the params check applies to the merged values.

    :param rerun_children: a resume point's child run that cannot be resumed is rerun in full instead
        of refusing the resume (``tree.py``).
    :param depth: how many parent runs up the tree this run is (0: the run asked about).
    :raises InputsInvalidError: an override is refused (its name, or a value the params refuse).
    """
    from airflow.models.taskinstance import TaskInstance
    from sqlalchemy import select

    dag_id, run_id = dag_run.dag_id, dag_run.run_id
    where = f"DAG {dag_id!r}, run {run_id!r}"
    facts = RunFacts(dag_id=dag_id, run_id=run_id, run_state=str(dag_run.state), warnings=conf.warnings())
    try:
        settings = facts.settings = settings_for(dag)
    except ResumeConfigError as err:
        facts.settings_error = str(err)
        settings = None
    if settings is None or not settings.enabled:
        return facts
    own = run_record.RunRecordCheck()
    try:
        own = run_record.check(dag_id, run_id, dag_run.conf)
        facts.resumed_run_id = existing_resumed_run(session, dag_id, run_id, own)
    except SigningUnavailableError as err:
        facts.signing_error = str(err)
        return facts
    except RunIdTakenError as err:
        facts.run_id_taken = str(err)
    facts.lineage = own.lineage
    if own.ignored:
        facts.warnings.append(own.ignored)
    try:
        facts.current_order = linear_order(dag)
    except NonLinearDagError as err:
        facts.current_order_error = str(err)

    tis: dict[str, list[Any]] = {}
    for ti in session.scalars(
        select(TaskInstance)
        .where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
        .order_by(TaskInstance.map_index)
    ):
        tis.setdefault(ti.task_id, []).append(ti)
    failed = sorted(
        (ti for task_tis in tis.values() for ti in task_tis if ti.state == "failed"),
        key=lambda ti: (ti.start_date is None, ti.start_date or 0, ti.map_index),
    )
    if failed:
        facts.failed_task_id = failed[0].task_id
    if facts.failed_task_id is None or facts.run_state != "failed":
        return facts
    if full_rerun:
        return _full_rerun_facts(session, dag, dag_run, facts, failed[0], own)

    facts.requested_task_id = from_task_id
    point = from_task_id or facts.failed_task_id
    if point not in tis:
        facts.resume_point_error = f"{where}: {shown(point)} is not a task of this run."
        return facts
    facts.resume_task_id = point
    failed_ti = failed[0]
    point_tis = tis[point]
    unfinished = [ti for ti in point_tis if ti.state != "success"]
    if point != facts.failed_task_id and unfinished:
        which = "" if unfinished[0].map_index < 0 else f" (map index {unfinished[0].map_index})"
        facts.resume_point_error = (
            f"{where}: cannot resume at {point!r}, which is {unfinished[0].state}{which}; choose the failed "
            f"task {facts.failed_task_id!r} or a task before it that succeeded."
        )
        return facts
    # A mapped resume point: its state file is the failed index's (every index saw the same inputs).
    point_ti = failed_ti if point == failed_ti.task_id else point_tis[0]
    facts.point_map_states = [(ti.map_index, str(ti.state)) for ti in point_tis if ti.map_index >= 0]

    # Before any state file is read: an expired run's state may be gone, and is not looked for.
    facts.state_expired = retention.state_expired(where, dag_run.end_date)
    if facts.state_expired:
        return facts
    incomplete = _incomplete_state(session, dag_id, run_id, point, point_ti.map_index)
    if incomplete:
        facts.state_error_code = ReasonCode.STATE_NOT_RECORDED
        facts.state_error = f"{where}: the state of task {point!r} was not recorded: {incomplete}"
        return facts
    requested_kill = manual_kill_from_audit_log(session, dag_id, run_id, failed_ti)
    try:
        scope = chain_scope(session, dag_id, run_id, own)
    except ProviderConfigError as err:
        facts.state_error_code = ReasonCode.PROVIDER_CONFIG_INVALID
        facts.state_error = f"{where}: the state of task {point!r} cannot be read: {err}"
        return facts
    facts.roots = scope.roots
    try:
        location, head_run, head_try = state_location(session, dag_run, point_ti, scope)
        failed_location = (
            location if point == failed_ti.task_id else state_location(session, dag_run, failed_ti, scope)[0]
        )
        # Written by the API server's listener, which Airflow calls only when it did set the state.
        kill_evidence(facts, failed_location, dag_run, failed_ti)
        facts.chain = load_chain(location, scope, hints=announced_locations(session, dag_run, scope))
        # A request that matches the attempt's end counts too, unless the attempt recorded its own error.
        if (
            facts.manual_kill is None
            and requested_kill is not None
            and not _failed_by_itself(facts.chain, failed_location, scope, point == failed_ti.task_id)
        ):
            facts.manual_kill = requested_kill
    except StateFolderUnsupportedError as err:
        facts.state_error_code = ReasonCode.STATE_NOT_RECORDED
        facts.state_error = f"{where}: the state of task {point!r} was not recorded: {err}"
        return facts
    except ProviderConfigError as err:
        facts.state_error_code = ReasonCode.PROVIDER_CONFIG_INVALID
        facts.state_error = f"{where}: the state of task {point!r} cannot be read: {err}"
        return facts
    except StateStorageError as err:
        facts.state_error_code = ReasonCode.STATE_UNREACHABLE
        facts.state_error = f"{where}: the state folder cannot be reached: {err}. Try again when it is back."
        return facts
    except StateMissingError:
        if requested_kill is not None:
            # Set to failed by hand before its state was written (Airflow recorded no failure of its
            # own for the attempt): the kill is what the user needs to know.
            facts.manual_kill = requested_kill
            return facts
        capture_error = _capture_error(session, dag_id, run_id, point, point_ti.map_index)
        if capture_error:
            facts.state_error_code = ReasonCode.STATE_NOT_RECORDED
            facts.state_error = f"{where}: the state of task {point!r} was not recorded: {capture_error}"
        else:
            facts.state_error_code = ReasonCode.STATE_MISSING
            facts.state_error = (
                f"{where}: no state file for task {point!r} (try {head_try}) at {scope.display(location.url)}; "
                "the task ran before resume was enabled, or the file was deleted."
            )
        return facts
    except StateError as err:
        facts.state_error_code = ReasonCode.STATE_INVALID
        facts.state_error = f"{where}: {err}"
        return facts
    identity = facts.chain.head.identity
    if (identity.dag_id, identity.run_id, identity.task_id, identity.map_index) != (
        dag_id,
        head_run,
        point,
        point_ti.map_index,
    ) or (head_try and identity.try_number != head_try):
        facts.state_error_code = ReasonCode.STATE_INVALID
        facts.state_error = (
            f"{where}: the state file at {scope.display(location.url)} belongs to another task attempt "
            f"({identity.dag_id!r}, {identity.run_id!r}, {identity.task_id!r}, try {identity.try_number})."
        )
        return facts
    original_conf = {k: v for k, v in (dag_run.conf or {}).items() if k != CONF_KEY}
    inputs = facts.chain.head.inputs
    facts.original_params = inputs.run_params if inputs.run_params is not None else inputs.params
    if overrides:
        from airflow_resume_provider.inputs import merge

        # Validated as a whole, the merged values pass the params check (or the request is refused).
        facts.inputs = merge(dag, facts.original_params, original_conf, overrides)
        problem = None
    else:
        problem = params_problem(dag, original_conf, facts.original_params)
    if problem:
        facts.params_error = (
            f"{where}: the DAG's params no longer accept the original run's values: {problem}. A resume "
            "replays the original inputs: make the params accept them again, resume with that param changed, "
            "or trigger a new run."
        )
    facts.map_count_changes = map_count_changes(session, dag, dag_run, facts)
    if settings.carry_task_state:  # what the tasks that run again reattach to (Airflow 3.3+); the plan picks
        facts.carried = carry.carried_entries(session, dag_run, list(tis))
    if not (facts.manual_kill or facts.current_order_error or facts.params_error):
        from airflow_resume_provider.tree import gather_children

        gather_children(session, dag, dag_run, facts, rerun_children=rerun_children, depth=depth)
    return facts

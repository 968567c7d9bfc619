"""
Which Airflow releases the provider runs on, and every private Task SDK / Airflow internal it uses:
the one place that knows Airflow's insides.

On an Airflow older than the floor the provider stays inert (no listener, no routes or views, no DAG
policy, no CLI commands) and says so once per process, instead of failing in odd places.

The internals are not public API and may move between Airflow releases: a new release is a change of
this file only. Each function says what it stands for; callers never import the internals themselves.
Where releases differ, the branch is keyed on the installed release (``AIRFLOW_V_3_3_PLUS``).
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, Any, overload

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from datetime import datetime

    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance as RuntimeTaskInstance
    from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

#: The lowest Airflow release the provider runs on: pyproject.toml requires the same (``apache-airflow>=``).
MIN_AIRFLOW_VERSION = "3.2"


def version_tuple(version: str) -> tuple[int, int, int]:
    """``(major, minor, micro)`` of a version; a pre-release or dev build counts as its release."""
    from packaging.version import Version

    parsed = Version(version)
    return parsed.major, parsed.minor, parsed.micro


def unsupported_reason(installed: str, required: str = MIN_AIRFLOW_VERSION) -> str | None:
    """Why the provider does not run on Airflow ``installed``, or None when it does."""
    from packaging.version import InvalidVersion

    try:
        if version_tuple(installed) >= version_tuple(required):
            return None
        problem = f"Airflow {installed} is installed"
    except InvalidVersion:
        problem = f"the installed Airflow's version {installed!r} cannot be read"
    return (
        f"airflow-resume-provider needs apache-airflow>={required}, but {problem}: the provider is "
        f"disabled (no state capture, no Resume page or API, no DAG policy, no CLI). Upgrade Airflow to "
        f"{required} or later to use it."
    )


def installed_airflow_version() -> str:
    """
    The installed Airflow's version, from its distribution's metadata: importing Airflow to ask would
    load the provider's policy module while this package may still be importing.
    """
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("apache-airflow-core")  # Airflow 3: the distribution that holds the code
    except PackageNotFoundError:
        return version("apache-airflow")  # Airflow 2


@functools.cache
def airflow_supported() -> bool:
    """Whether the installed Airflow is at or above the floor; logs why not, once per process."""
    reason = unsupported_reason(installed_airflow_version())
    if reason is not None:
        log.warning("%s", reason)
    return reason is None


def airflow_at_least(version: str) -> bool:
    """Whether the installed Airflow is ``version`` or later (pre-releases count as their release)."""
    return version_tuple(installed_airflow_version()) >= version_tuple(version)


# --- the Task SDK and Airflow internals ---------------------------------------------------------------

#: Airflow 3.3 or later (else 3.2, the floor).
AIRFLOW_V_3_3_PLUS = airflow_at_least("3.3")


def runtime_task_instance_class() -> type:
    """The worker-side task instance class (``task_runner.RuntimeTaskInstance``)."""
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    return RuntimeTaskInstance


def _comms() -> Any:
    from airflow.sdk.execution_time.task_runner import SUPERVISOR_COMMS

    return SUPERVISOR_COMMS


def xcom_values(ti: Any, task_id: str, key: str) -> list[Any]:
    """All values of one XCom key of a task in ``ti``'s run, in map-index order, as Airflow stores them."""
    from airflow.sdk.execution_time.comms import GetXComSequenceSlice, XComSequenceSliceResult

    msg = _comms().send(
        GetXComSequenceSlice(
            key=key, dag_id=ti.dag_id, run_id=ti.run_id, task_id=task_id, start=None, stop=None, step=None
        )
    )
    if not isinstance(msg, XComSequenceSliceResult):
        raise RuntimeError(f"unexpected answer to an XCom read of {task_id!r}.{key}: {type(msg).__name__}")
    return list(msg.root)


def xcom_value(ti: Any, task_id: str, key: str, map_index: int = -1) -> Any:
    """One XCom value of a task (map index) in ``ti``'s run, as Airflow stores it, or None."""
    from airflow.sdk.execution_time.comms import GetXCom, XComResult

    msg = _comms().send(
        GetXCom(key=key, dag_id=ti.dag_id, run_id=ti.run_id, task_id=task_id, map_index=map_index)
    )
    return msg.value if isinstance(msg, XComResult) else None


def task_instance_count(ti: Any, task_id: str) -> int:
    """How many task instances (map indexes, for a mapped task) ``task_id`` has in ``ti``'s run."""
    cls: Any = runtime_task_instance_class()
    return int(cls.get_ti_count(ti.dag_id, task_ids=[task_id], run_ids=[ti.run_id]))


def run_conf_from_server(ti: Any) -> dict[str, Any] | None:
    """The run's conf as the API server sent it, before any task code or wrapper changed it."""
    server_ctx = getattr(ti, "_ti_context_from_server", None)
    return server_ctx.dag_run.conf if server_ctx is not None else None


def server_redact(value: Any, name: str | None = None) -> Any:
    """The API server's secrets masker (sensitive key names and the secrets registered there hidden)."""
    from airflow._shared.secrets_masker import secrets_masker

    return secrets_masker.redact(value, name)


def redact(value: Any, name: str | None = None) -> Any:
    """The task process's secrets masker (sensitive key names and registered secrets hidden)."""
    try:
        from airflow.sdk._shared.secrets_masker import redact as sdk_redact

        return sdk_redact(value, name)
    except ImportError:
        from airflow._shared.secrets_masker import secrets_masker

        return secrets_masker.redact(value, name)


def wrap_xcom_push(after_push: Callable[[Any, str, Callable[[Any, str, Any], Any]], None]) -> None:
    """
    Call ``after_push(ti, key, push)`` after every ``ti.xcom_push`` and ``await ti.axcom_push`` (where the
    Task SDK has it) in this task process: the Execution API cannot list the keys a task pushed.
    ``push(ti, key, value)`` is the unwrapped ``xcom_push``. ``after_push`` runs under the provider's
    guard: whatever it raises, the task's own push has happened and the task carries on.
    """
    from airflow_resume_provider.guard import TASK, guarded

    cls: Any = runtime_task_instance_class()
    original = cls.xcom_push

    def track(ti: Any, key: str) -> None:
        with guarded(f"Tracking the XCom key {key!r} for resume", TASK):
            after_push(ti, key, original)

    def xcom_push(self: Any, key: str, value: Any) -> Any:
        result = original(self, key, value)
        track(self, key)
        return result

    xcom_push.__wrapped__ = original  # type: ignore[attr-defined]
    cls.xcom_push = xcom_push

    original_async = getattr(cls, "axcom_push", None)
    if original_async is None:
        return

    async def axcom_push(self: Any, key: str, value: Any) -> Any:
        import asyncio

        result = await original_async(self, key, value)
        # On a thread: a blocking Execution API call on the event loop's thread may meet an
        # ``asend`` of another coroutine holding the connection (the Task SDK refuses that).
        with guarded(f"Tracking the XCom key {key!r} for resume", TASK):
            await asyncio.to_thread(track, self, key)
        return result

    axcom_push.__wrapped__ = original_async  # type: ignore[attr-defined]
    cls.axcom_push = axcom_push


def resuming_from_deferral(ti: Any) -> bool:
    """Whether this task process continues an attempt that deferred (the trigger fired): the attempt's
    XComs pushed before ``defer()`` are still there, its module state of before is not."""
    server_ctx = getattr(ti, "_ti_context_from_server", None)
    return bool(getattr(server_ctx, "next_method", None))


def _initialized(stats: Any, stats_utils: Any) -> Any:
    """
    The ``observability.metrics.stats`` module's metrics (a module from 3.3 on, its ``Stats`` class in
    3.2), set up from ``[metrics]`` if no one did yet.
    """
    if not AIRFLOW_V_3_3_PLUS:
        cls = stats.Stats
        # Nobody set it up (the API server never does in 3.2): a first use then fell back to no metrics.
        if cls.factory is None or getattr(cls.factory, "__name__", "") == "NoStatsLogger":
            cls.initialize(factory=stats_utils.get_stats_factory(cls))
        return cls
    if getattr(stats, "_factory", None) is None:
        from airflow.configuration import conf

        stats.initialize(
            factory=stats_utils.get_stats_factory(),
            export_legacy_names=conf.getboolean("metrics", "legacy_names_on", fallback=True),
        )
    return stats


def task_stats() -> Any:
    """
    Airflow's metrics in the task runner: the Task SDK's ``Stats``, which the task runner sets up from
    ``[metrics]`` before the task starts (set up here when it did not, e.g. under ``dag.test()``).
    """
    from airflow.sdk._shared.observability.metrics import stats
    from airflow.sdk.observability.metrics import stats_utils

    return _initialized(stats, stats_utils)


def server_stats() -> Any:
    """
    Airflow's metrics in the server-side processes (API server, scheduler, the retry worker, the CLI):
    airflow-core's ``Stats``, which the API server and the scheduler set up from ``[metrics]`` when they
    start (set up here in processes Airflow does not set it up in: the retry worker and the CLI).
    """
    from airflow._shared.observability.metrics import stats
    from airflow.observability.metrics import stats_utils

    return _initialized(stats, stats_utils)


# --- object storage ----------------------------------------------------------------------------------


# --- dates ---------------------------------------------------------------------------------------------


@overload
def as_utc(moment: datetime) -> datetime: ...
@overload
def as_utc(moment: None) -> None: ...
def as_utc(moment: datetime | None) -> datetime | None:
    """``moment`` in UTC, a naive one read as UTC as Airflow stores times (Airflow's ``coerce_datetime``)."""
    from airflow.sdk.timezone import coerce_datetime

    return None if moment is None else coerce_datetime(moment).in_timezone("UTC")


def iso_or_none(moment: Any) -> str | None:
    """``moment.isoformat()``, or None for no moment (a run without a logical date, say)."""
    return None if moment is None else moment.isoformat()


# --- task logs -------------------------------------------------------------------------------------------


def log_templates(session: Session) -> list[tuple[int, str]]:
    """Every ``log_filename_template`` the deployment has used (Airflow records each in ``log_template``),
    as ``(id, filename)``, oldest first."""
    from airflow.models.tasklog import LogTemplate
    from sqlalchemy import select

    return [
        (int(i), str(f))
        for i, f in session.execute(select(LogTemplate.id, LogTemplate.filename).order_by(LogTemplate.id))
    ]


def run_log_template(session: Session, dag_run: Any) -> str | None:
    """The log filename template of a run, or None for a run from before templates were recorded."""
    try:
        return dag_run.get_log_template(session=session).filename
    except Exception:
        return None


#: The process context Airflow gives server-side processes (connections may live in the metadata DB).
SERVER_PROCESS_CONTEXT = {"_AIRFLOW_PROCESS_CONTEXT": "server"}


# --- DAGs and tasks ----------------------------------------------------------------------------------


def param_is_the_tasks_own(task: Any, key: str) -> bool:
    """Whether the task's param ``key`` (one it has) was set on the task (``@task(params=...)``)."""
    param = task.params.get_param(key)
    return getattr(param, "source", None) == "task"


# --- the metadata database (server side: API server, scheduler, CLI) -----------------------------------


def create_dagrun(dag: Any, *, note: str | None, session: Session, **kwargs: Any) -> Any:
    """``dag.create_dagrun(...)`` of a serialized DAG, with the run's note."""
    return dag.create_dagrun(note=note, session=session, **kwargs)


def set_note_of_new_task_instance(ti: Any, text: str) -> None:
    """Give a task instance of a run just created its note without a query: through ``ti.note`` the ORM
    first loads the (absent) note row, one SELECT per task instance."""
    from sqlalchemy.orm.attributes import set_committed_value

    set_committed_value(ti, "task_instance_note", None)
    ti.note = text


def add_xcoms_to_new_run(session: Session, dag_run: Any, rows: list[tuple[str, int, str, Any]]) -> None:
    """
    Store XComs already in Airflow's stored form, as they are (not serialized again), in a run just
    created (it has none to replace): ``rows`` of ``(task_id, map_index, key, value)``, one flush.
    """
    from airflow.models.xcom import XComModel

    session.add_all(
        XComModel(
            dag_run_id=dag_run.id,
            key=key,
            value=value,
            run_id=dag_run.run_id,
            task_id=task_id,
            dag_id=dag_run.dag_id,
            map_index=map_index,
        )
        for task_id, map_index, key, value in rows
    )
    session.flush()


def expand_mapped_task(dag: Any, task_id: str, run_id: str, *, session: Session) -> list[Any]:
    """Create the map indexes of a mapped task in a run now, as the scheduler would when it gets there
    (from the upstream task's recorded map length, or the DAG's literal values); all its task
    instances, in map-index order."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.taskmap import TaskMap
    from sqlalchemy import select

    TaskMap.expand_mapped_task(dag.get_task(task_id), run_id, session=session)
    session.flush()
    return list(
        session.scalars(
            select(TaskInstance)
            .where(
                TaskInstance.dag_id == dag.dag_id,
                TaskInstance.run_id == run_id,
                TaskInstance.task_id == task_id,
            )
            .order_by(TaskInstance.map_index)
        )
    )


def mapped_count_in_run(dag: Any, task_id: str, run_id: str, *, session: Session) -> int | None:
    """How many map indexes the current DAG's mapped task would get in ``run_id`` (from that run's
    recorded upstream map lengths, or the DAG's literal values); None when that cannot be known."""
    from airflow.serialization.definitions.mappedoperator import get_mapped_ti_count

    try:
        return int(get_mapped_ti_count(dag.get_task(task_id), run_id, session=session))
    except Exception:  # NotFullyPopulated, or a release where this is not how it is counted
        return None


def record_map_length(session: Session, dag: Any, task_id: str, run_id: str, stored_value: Any) -> None:
    """Record how many values a task's return value maps a downstream task over (Airflow's ``task_map``
    row, written when the task pushes it), when a downstream mapped task expands over it."""
    from airflow.models.taskmap import TaskMap

    if next(dag.get_task(task_id).iter_mapped_dependants(), None) is None:
        return
    value = _deserialize_stored(stored_value)
    if isinstance(value, (list, tuple, dict)):
        session.merge(
            TaskMap(
                dag_id=dag.dag_id, task_id=task_id, run_id=run_id, map_index=-1, length=len(value), keys=None
            )
        )


def stored_xcom_json(value: Any) -> Any:
    """An XCom value as the metadata DB holds it, its JSON text decoded (Airflow's serde form)."""
    import json

    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _deserialize_stored(value: Any) -> Any:
    """An XCom value in Airflow's stored form (serde form, JSON text when the Task SDK wrote it), as the
    task returned it."""
    from airflow.sdk.serde import deserialize

    try:
        return deserialize(stored_xcom_json(value))
    except Exception:
        return value


def dag_of_version(bag: Any, version_id: Any, *, session: Session) -> Any:
    """The serialized DAG of one DAG version, read through a ``DBDagBag``, or None."""
    return bag.get_dag(version_id, session=session)


def validate_params_with(params: Any, values: Mapping[str, Any]) -> None:
    """
    Validate a serialized DAG's params with ``values`` applied, as creating a run with them would;
    raises ``ParamValidationError`` (or ``ValueError`` / ``TypeError``) when they refuse a value.
    """
    params.deep_merge(values).validate()


def param_problems(params: Any, values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """
    Each param of a serialized DAG's params, with ``values`` applied, that refuses its value, and why:
    the validation :func:`validate_params_with` makes, param by param so the refusal can name it.
    """
    merged = params.deep_merge(values)
    problems = []
    for name in merged:
        try:
            merged.get_param(name).resolve(raises=True)
        except Exception as err:
            message = getattr(err, "message", None) or str(err) or type(err).__name__
            problems.append((str(name), str(message).strip().splitlines()[0]))
    return problems


# --- the API server -------------------------------------------------------------------------------------


def session_user_wins_over_bearer(request: Any) -> bool:
    """
    Whether Airflow's ``get_user`` takes the user its ``JWTRefreshMiddleware`` built from the session
    cookie even when the request also carries a bearer token: before 3.3 that user wins, from 3.3 on an
    explicit bearer token always does.
    """
    return not AIRFLOW_V_3_3_PLUS and getattr(request.state, "user", None) is not None


# --- the task state store (Airflow 3.3, AIP-103) --------------------------------------------------------


def task_state_store_model() -> type | None:
    """Airflow's ``task_state_store`` table (``TaskStateStoreModel``), or None before Airflow 3.3."""
    try:
        from airflow.models.task_state_store import TaskStateStoreModel
    except ImportError:
        return None
    return TaskStateStoreModel


# --- manual kills: what Airflow's API server and audit log say ----------------------------------------

#: In the error Airflow's API server passes to ``on_task_instance_failed`` when a person set the task
#: instance to failed ("TaskInstance's state was manually set to `failed`.").
_SET_BY_HAND = "manually set"
#: Audit-log events of Airflow's API that can set a task instance or a run to failed by hand.
MANUAL_STATE_EVENTS = ("patch_task_instance", "bulk_task_instances", "patch_dag_run", "bulk_dag_runs")
#: Those of them whose rows may name the run only in the request body.
BULK_STATE_EVENTS = ("bulk_task_instances", "bulk_dag_runs")
#: Audit-log events Airflow itself writes, for the attempt (dag, task, run, map index, try), when a
#: task instance fails on its own: the Execution API's state update and the scheduler's
#: ``handle_failure`` (``failed``), a DAG's ``fail_fast`` (``fail task``). Setting a task instance
#: to failed through the API writes none of them, only the request's row.
OWN_FAILURE_EVENTS = ("failed", "fail task")


def set_by_hand(error: Any) -> bool:
    """Whether an ``on_task_instance_failed`` error is the API server's "manually set to failed"."""
    return _SET_BY_HAND in str(error or "").lower()

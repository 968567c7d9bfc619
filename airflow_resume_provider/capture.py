"""
What the worker records before each task attempt, and on a task's own failure.

Runs inside the task runner (the worker's task process). Every entry point here is called from a
listener hook that swallows errors: a capture problem is logged as a warning and recorded as an
XCom (``resume_capture_error``), and never fails or noticeably delays the task.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow_resume_provider import causes, compat, conf, metrics
from airflow_resume_provider.exceptions import StateError
from airflow_resume_provider.persisted import (
    BOOKKEEPING_XCOM_KEYS,
    CONF_KEY,
    RETURN_KEY,
    STAGE_CAPTURE,
    STAGE_FAILURE,
    XCOM_CAPTURE_ERROR,
    XCOM_STATE_REF,
)
from airflow_resume_provider.resume_param import settings_for
from airflow_resume_provider.state import storage
from airflow_resume_provider.state.model import (
    FailureRecord,
    Inputs,
    Lineage,
    StateRecord,
    StateRef,
    StructureSnapshot,
    TaskIdentity,
    XComEntry,
)
from airflow_resume_provider.structure import linear_order, mapped_task_ids, structure_hash

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_resume_provider.compat import RuntimeTaskInstance

log = logging.getLogger(__name__)

AttemptKey = tuple[str, str, str, int, int]

# The record written for the attempt running in this process, kept to add the failure without a read.
_written: dict[AttemptKey, tuple[Any, StateRecord]] = {}
# Attempts whose capture was tried in this process (written or not).
_attempted: set[AttemptKey] = set()
# What the running task announced in its resume_state_ref XCom (state file and extra XCom keys).
_announced: dict[tuple[str, str, str, int], dict[str, Any]] = {}
_tracker_installed = False


def _attempt_key(ti: RuntimeTaskInstance) -> AttemptKey:
    return (ti.dag_id, ti.run_id, ti.task_id, _map_index(ti), ti.try_number)


def _task_key(ti: Any) -> tuple[str, str, str, int]:
    return (ti.dag_id, ti.run_id, ti.task_id, _map_index(ti))


def _map_index(ti: Any) -> int:
    return -1 if ti.map_index is None else int(ti.map_index)


def is_task_runner_instance(ti: Any) -> bool:
    """True for the worker-side task instance (not an ORM row seen by the scheduler or API server)."""
    return isinstance(ti, compat.runtime_task_instance_class())


def resume_enabled(ti: RuntimeTaskInstance) -> bool:
    dag = getattr(ti.task, "dag", None)
    if dag is None:
        return False
    try:
        return settings_for(dag).enabled
    except Exception:  # an invalid param is a DAG import error already; nothing to capture
        log.debug("Resume capture skipped for %s: invalid params['resume']", ti.dag_id)
        return False


def _utcnow() -> str:
    return datetime.now(timezone.utc).isoformat()


def _jsonable(value: Any) -> Any:
    """A JSON-compatible copy; values JSON cannot hold are stored as their string form."""
    from pydantic_core import to_jsonable_python

    return to_jsonable_python(value, fallback=str)


def run_bounded(fn: Callable[[], Any], timeout: float, what: str) -> Any:
    """
    Run ``fn`` in a helper thread and give up waiting after ``timeout`` seconds.

    A daemon thread, not ``concurrent.futures``: its worker threads are joined when the interpreter
    exits, so a storage call hanging past the timeout would then hold the task process at its end.
    """
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as err:
            outcome["error"] = err

    thread = threading.Thread(target=target, name="resume-state-io", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"{what} did not finish within [resume] capture_timeout={timeout:g}s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


# --- reading what the task's inputs are -------------------------------------------------------------


def _upstream_announcements(ti: RuntimeTaskInstance, upstream_id: str) -> list[dict[str, Any]]:
    """The upstream task's announcements of its state file and extra XCom keys (one per map index when
    it is mapped, in map-index order; none for an attempt that was not captured)."""
    if not _is_mapped(ti, upstream_id):
        value = compat.xcom_value(ti, upstream_id, XCOM_STATE_REF)
        return [value] if isinstance(value, dict) else []
    values = compat.xcom_values(ti, upstream_id, XCOM_STATE_REF)
    return [value for value in values if isinstance(value, dict)]


class UpstreamStateLost(StateError):
    """The upstream task's state was not recorded; ``origin`` is the first task whose state was lost."""

    def __init__(self, upstream_id: str, origin: str, reason: str) -> None:
        self.origin, self.origin_reason = origin, reason
        why = f"({reason})" if origin == upstream_id else f"(first lost at task {origin!r}: {reason})"
        super().__init__(
            f"the state of the upstream task {upstream_id!r} was not recorded {why}, so the XComs it passes on "
            "are not known"
        )


def _check_upstream_recorded(ti: RuntimeTaskInstance, upstream_id: str) -> None:
    """
    :raises UpstreamStateLost: the upstream task recorded that its state, or its announcement of the
        XCom keys it pushed, could not be recorded: this task's inputs cannot be known completely either.
    """
    if _is_mapped(ti, upstream_id):
        values = compat.xcom_values(ti, upstream_id, XCOM_CAPTURE_ERROR)
    else:
        values = [compat.xcom_value(ti, upstream_id, XCOM_CAPTURE_ERROR)]
    for value in values:
        if isinstance(value, dict) and value.get("stage") == STAGE_CAPTURE:
            # Named once, where it was first lost: a long chain must not nest every task's reason.
            origin = value.get("origin") or upstream_id
            raise UpstreamStateLost(
                upstream_id, str(origin), str(value.get("origin_reason") or value.get("reason"))
            )


def _upstream_xcoms(
    ti: RuntimeTaskInstance, upstream_id: str, extra_keys: list[str], map_count: int | None
) -> list[XComEntry]:
    """Every XCom of the upstream task under ``return_value`` and ``extra_keys``, with its map index."""
    entries = []
    for key in [RETURN_KEY, *sorted(set(extra_keys))]:
        values = compat.xcom_values(ti, upstream_id, key)
        if map_count is None:
            entries += [XComEntry(task_id=upstream_id, key=key, map_index=-1, value=v) for v in values]
        elif len(values) == map_count:  # every index pushed one: the sequence is in map-index order
            entries += [
                XComEntry(task_id=upstream_id, key=key, map_index=i, value=v) for i, v in enumerate(values)
            ]
        elif values:  # some index pushed none (e.g. returned None): ask index by index
            for index in range(map_count):
                value = compat.xcom_value(ti, upstream_id, key, map_index=index)
                if value is not None:
                    entries.append(XComEntry(task_id=upstream_id, key=key, map_index=index, value=value))
    return entries


def _is_mapped(ti: RuntimeTaskInstance, task_id: str) -> bool:
    task = ti.task.dag.task_dict.get(task_id)
    return bool(getattr(task, "is_mapped", False))


def _lineage(ti: RuntimeTaskInstance) -> Lineage | None:
    """The lineage of a resumed run, from the provider's record verified by the task wrapper."""
    from airflow_resume_provider.resumed_context import record_for

    record = record_for(ti.dag_id, ti.run_id)
    if record is None:
        return None
    return Lineage(
        parent_run_id=record.parent_run_id,
        root_run_id=record.root_run_id,
        resume_count=record.resume_count,
        resumed_at_task_id=record.resumed_at_task_id,
    )


def run_level_params(task: Any, params: dict[str, Any], run_conf: dict[str, Any]) -> dict[str, Any]:
    """The run's params as the DAG defines them: ``params`` without this task's own task-level params."""
    from airflow_resume_provider.resumed_context import is_task_level_param

    values = {k: v for k, v in params.items() if k != CONF_KEY}
    dag_params = getattr(getattr(task, "dag", None), "params", None) or {}
    for key in list(values):
        if key in run_conf or not is_task_level_param(task, key):
            continue
        if key in dag_params:
            values[key] = dag_params[key]
        else:
            del values[key]
    return values


def build_record(ti: RuntimeTaskInstance) -> StateRecord:
    """The state record of the running attempt: identity, structure, inputs, lineage."""
    dag = ti.task.dag
    order = linear_order(dag)
    ids = [t.task_id for t in order]
    position = ids.index(ti.task_id)
    upstream_id = ids[position - 1] if position > 0 else None

    context = ti.get_template_context()
    dag_run = context["dag_run"]
    server_conf = compat.run_conf_from_server(ti)
    raw_conf = dict((server_conf if server_conf is not None else dag_run.conf) or {})
    params = context.get("params") or {}

    xcoms: list[XComEntry] = []
    previous = None
    map_count = None
    if upstream_id is not None:
        if order[position - 1].mapped:
            map_count = compat.task_instance_count(ti, upstream_id)
        _check_upstream_recorded(ti, upstream_id)
        announced = _upstream_announcements(ti, upstream_id)
        keys = sorted({key for a in announced for key in a.get("xcom_keys") or []})
        xcoms = _upstream_xcoms(ti, upstream_id, keys, map_count)
        if announced:
            # Every map index of a mapped upstream task saw the same inputs: one of their files leads on.
            first = announced[0]
            previous = StateRef(
                path=first["path"], digest=first["digest"], map_index=first.get("map_index", -1)
            )

    return StateRecord(
        written_at=_utcnow(),
        identity=TaskIdentity(
            dag_id=ti.dag_id,
            run_id=ti.run_id,
            task_id=ti.task_id,
            map_index=_map_index(ti),
            try_number=ti.try_number,
        ),
        structure=StructureSnapshot(
            tasks=[(t.task_id, t.task_type) for t in order] if upstream_id is None else [],
            hash=structure_hash(order),
            mapped=mapped_task_ids(order),
        ),
        inputs=Inputs(
            upstream_task_id=upstream_id,
            xcoms=xcoms,
            upstream_map_count=map_count,
            conf=_jsonable({k: v for k, v in raw_conf.items() if k != CONF_KEY}),
            params=_jsonable({k: v for k, v in dict(params).items() if k != CONF_KEY}),
            run_params=_jsonable(run_level_params(ti.task, dict(params), raw_conf)),
            logical_date=compat.iso_or_none(context.get("logical_date")),
            data_interval_start=compat.iso_or_none(context.get("data_interval_start")),
            data_interval_end=compat.iso_or_none(context.get("data_interval_end")),
            run_after=compat.iso_or_none(getattr(dag_run, "run_after", None)),
        ),
        previous=previous,
        lineage=_lineage(ti),
    )


# --- writing ----------------------------------------------------------------------------------------


def _write(ti: RuntimeTaskInstance, record: StateRecord, handle: Any | None = None) -> tuple[Any, str, str]:
    location = storage.location_for(
        dag_id=ti.dag_id,
        run_id=ti.run_id,
        task_id=ti.task_id,
        map_index=_map_index(ti),
        try_number=ti.try_number,
    )
    timeout = conf.capture_timeout()
    if handle is None:
        handle = run_bounded(
            lambda: storage.prepare(location), timeout, f"Opening {storage.shown(location.url)}"
        )
    data, digest = storage.encode(record, conf.signing_key())
    run_bounded(lambda: storage.write_bytes(handle, data), timeout, f"Writing {storage.shown(location.url)}")
    return handle, location.url, digest


def _record_capture_error(
    ti: RuntimeTaskInstance, reason: str, stage: str = STAGE_CAPTURE, lost: UpstreamStateLost | None = None
) -> None:
    log.warning(
        "Resume state for task %r (try %s) of run %r could not be recorded: %s. The run cannot be resumed "
        "from this task; no impact on the task.",
        ti.task_id,
        ti.try_number,
        ti.run_id,
        reason,
    )
    try:
        error = {"reason": reason, "try_number": ti.try_number, "stage": stage}
        if lost is not None:
            error |= {"origin": lost.origin, "origin_reason": lost.origin_reason}
        ti.xcom_push(XCOM_CAPTURE_ERROR, error)
    except Exception:
        log.warning("Could not record the capture error as an XCom; no impact on the task.", exc_info=True)


def capture_attempt(ti: RuntimeTaskInstance) -> None:
    """Write the attempt's state file before it executes, and point the next task at it."""
    if not resume_enabled(ti):
        return
    started, recorded = time.monotonic(), False
    try:
        recorded = _capture_attempt(ti)
    finally:
        metrics.capture_duration(time.monotonic() - started)
        (metrics.capture_written if recorded else metrics.capture_failed)()


def _capture_attempt(ti: RuntimeTaskInstance) -> bool:
    """:func:`capture_attempt`'s work; whether the state was written and announced."""
    _attempted.add(_attempt_key(ti))
    _install_xcom_key_tracker()
    try:
        # The XComs the attempt pushed before it deferred are still there: keep announcing their keys.
        keys = _keys_announced_before_deferral(ti) if compat.resuming_from_deferral(ti) else []
        record = build_record(ti)
        handle, url, digest = _write(ti, record)
    except StateError as err:
        _record_capture_error(ti, str(err), lost=err if isinstance(err, UpstreamStateLost) else None)
        return False
    except Exception as err:
        _record_capture_error(ti, storage.describe_error(err))
        return False
    _written[_attempt_key(ti)] = (handle, record)
    announcement = {"path": url, "digest": digest, "xcom_keys": keys, "map_index": _map_index(ti)}
    try:
        ti.xcom_push(XCOM_STATE_REF, announcement)
    except Exception as err:
        _record_capture_error(
            ti,
            f"the state file was written to {storage.shown(url)} but could not be announced: "
            f"{storage.describe_error(err)}",
        )
        return False
    # Tracked only once announced: keys the task pushes later are added to what was announced.
    _announced[_task_key(ti)] = announcement
    return True


def _keys_announced_before_deferral(ti: RuntimeTaskInstance) -> list[str]:
    """The extra XCom keys the attempt announced in its task process before it deferred."""
    value = compat.xcom_value(ti, ti.task_id, XCOM_STATE_REF, _map_index(ti))
    return sorted(value.get("xcom_keys") or []) if isinstance(value, dict) else []


def record_failure(ti: RuntimeTaskInstance, error: BaseException | str | None) -> None:
    """Add the failure (exception type, message, try, cause) to the attempt's state file."""
    if not resume_enabled(ti):
        return
    key = _attempt_key(ti)
    if key not in _attempted:
        # Template rendering failed before the running hook: record the inputs now.
        capture_attempt(ti)
    if key not in _written:
        return
    handle, record = _written[key]
    failure = FailureRecord(
        exception_type=type(error).__name__ if isinstance(error, BaseException) else "Error",
        message=_redact(str(error) if error is not None else "unknown error"),
        try_number=ti.try_number,
        recorded_at=_utcnow(),
        cause=causes.cause_of_exception(error).value,
    )
    # Only the failure is added: the rest stays as written, so links to the file stay valid.
    updated = record.model_copy(update={"failure": failure})
    try:
        _write(ti, updated, handle)
    except Exception as err:
        _record_capture_error(
            ti,
            f"the failure could not be added to the state file: {storage.describe_error(err)}",
            STAGE_FAILURE,
        )
        return
    _written[key] = (handle, updated)


def forget(ti: RuntimeTaskInstance) -> None:
    _written.pop(_attempt_key(ti), None)
    _attempted.discard(_attempt_key(ti))
    _announced.pop(_task_key(ti), None)


def _redact(message: str) -> str:
    try:
        return str(compat.redact(message))
    except Exception:
        return message


def _announce_new_key(ti: Any, key: str, push: Callable[[Any, str, Any], Any]) -> None:
    """Add a key user code pushed to the task's announcement, as it happens."""
    task_key = _task_key(ti)
    announcement = _announced.get(task_key)
    extra = key != RETURN_KEY and key not in BOOKKEEPING_XCOM_KEYS
    if announcement is None or not extra or key in announcement["xcom_keys"]:
        return
    updated = {**announcement, "xcom_keys": sorted([*announcement["xcom_keys"], key])}
    try:
        # Announced now: the task's state is final before any later hook runs.
        push(ti, XCOM_STATE_REF, updated)
    except Exception as err:
        # The announcement in Airflow now misses a key: stop tracking, and say the state is not recorded.
        del _announced[task_key]
        _record_capture_error(
            ti, f"the XCom key {key!r} was pushed but could not be announced: {type(err).__name__}: {err}"
        )
        return
    _announced[task_key] = updated


def _install_xcom_key_tracker() -> None:
    """Record the keys user code pushes through ``ti.xcom_push``: the Execution API cannot list them."""
    global _tracker_installed
    if _tracker_installed:
        return
    compat.wrap_xcom_push(_announce_new_key)
    _tracker_installed = True

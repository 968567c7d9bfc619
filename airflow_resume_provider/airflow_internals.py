"""
Every private Task SDK / Airflow internal the provider uses, in one place.

These are not public API and may move between Airflow releases: a new release is a change of this
file only. Each function says what it stands for; callers never import the internals themselves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable


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
    """One XCom value of a task in ``ti``'s run (deserialized), or None."""
    from airflow.sdk.execution_time.comms import GetXCom, XComResult

    msg = _comms().send(
        GetXCom(key=key, dag_id=ti.dag_id, run_id=ti.run_id, task_id=task_id, map_index=map_index)
    )
    return msg.value if isinstance(msg, XComResult) else None


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


def wrap_xcom_push(after_push: Callable[[Any, str, Callable[..., Any]], None]) -> None:
    """
    Call ``after_push(ti, key, original_push)`` after every ``ti.xcom_push`` in this task process: the
    Execution API cannot list the keys a task pushed.
    """
    cls: Any = runtime_task_instance_class()
    original = cls.xcom_push

    def xcom_push(self: Any, key: str, value: Any) -> Any:
        result = original(self, key, value)
        after_push(self, key, original)
        return result

    xcom_push.__wrapped__ = original  # type: ignore[attr-defined]
    cls.xcom_push = xcom_push


def _initialized(stats: Any, stats_utils: Any) -> Any:
    """``stats`` (an ``observability.metrics.stats`` module), set up from ``[metrics]`` if no one did yet."""
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
    try:
        from airflow.sdk._shared.observability.metrics import stats
        from airflow.sdk.observability.metrics import stats_utils
    except ImportError:  # Airflow 3.1: one Stats for every process
        from airflow.stats import Stats

        return Stats
    return _initialized(stats, stats_utils)


def server_stats() -> Any:
    """
    Airflow's metrics in the server-side processes (API server, scheduler, the retry worker, the CLI):
    airflow-core's ``Stats``, which the API server and the scheduler set up from ``[metrics]`` when they
    start (set up here in processes Airflow does not set it up in: the retry worker and the CLI).
    """
    try:
        from airflow._shared.observability.metrics import stats
        from airflow.observability.metrics import stats_utils
    except ImportError:  # Airflow 3.1: one Stats for every process
        from airflow.stats import Stats

        return Stats
    return _initialized(stats, stats_utils)

"""
Why a task attempt failed: the cause every failure the provider records carries.

- ``infrastructure``: the attempt recorded no exception of its own (killed by a signal, out of memory,
  lost worker, heartbeat timeout, executor or pod failure);
- ``timeout``: ``execution_timeout`` (``AirflowTaskTimeout``, or ``TaskDeferralTimeout`` for a deferred task);
- ``error``: any other exception raised by the task.

Cause names are persisted (state files, DAG files' ``retry_on``, metrics tags): never rename.
"""

from __future__ import annotations

from typing import Any, Literal

from airflow_resume_provider.models import StrEnum


class FailureCause(StrEnum):
    INFRASTRUCTURE = "infrastructure"
    TIMEOUT = "timeout"
    ERROR = "error"


#: A cause's name, as the DAG's ``retry_on`` lists it.
CauseName = Literal["infrastructure", "timeout", "error"]
ALL_CAUSES: tuple[CauseName, ...] = ("infrastructure", "timeout", "error")
#: Exceptions Airflow raises in the task when its ``execution_timeout`` is over.
TIMEOUT_EXCEPTIONS = frozenset({"AirflowTaskTimeout", "TaskDeferralTimeout"})
#: The metrics tag of a failure whose cause is not known (its state could not be read).
UNKNOWN = "unknown"


def cause_of_exception(error: Any) -> FailureCause:
    """The cause of an exception the task itself raised (a subclass of a timeout is a timeout)."""
    names = {cls.__name__ for cls in type(error).__mro__} if isinstance(error, BaseException) else set()
    return FailureCause.TIMEOUT if names & TIMEOUT_EXCEPTIONS else FailureCause.ERROR


def recorded_cause(exception_type: str | None, cause: str | None) -> str:
    """The cause of a recorded failure; records written before causes were recorded have none."""
    if cause:
        return cause
    return FailureCause.TIMEOUT.value if exception_type in TIMEOUT_EXCEPTIONS else FailureCause.ERROR.value


def infrastructure_failure(try_number: int) -> dict[str, Any]:
    """The verdict's ``failure`` for an attempt that failed without recording an exception."""
    return {
        "exception_type": None,
        "message": None,
        "try_number": try_number,
        "recorded_at": None,
        "cause": FailureCause.INFRASTRUCTURE.value,
    }


def cause_of(failure: dict[str, Any] | None) -> str | None:
    """The cause in a verdict's ``failure``, or None when nothing is known of the failure."""
    return failure.get("cause") if failure else None


def describe(failure: dict[str, Any]) -> str:
    """The failure's cause in words, with the exception type when there is one."""
    cause, kind = failure.get("cause"), failure.get("exception_type")
    if cause == FailureCause.INFRASTRUCTURE:
        return (
            "in the infrastructure: the task recorded no error of its own (killed by a signal, out of "
            "memory, lost worker, heartbeat timeout, executor or pod failure)"
        )
    if cause == FailureCause.TIMEOUT:
        return f"a timeout ({kind})"
    return f"an error in the task's code ({kind})"

"""Whether a failed run is retried automatically: a pure function of recorded facts."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_resume_provider.causes import ALL_CAUSES, FailureCause, cause_of, describe
from airflow_resume_provider.models import ReasonCode

if TYPE_CHECKING:
    from airflow_resume_provider.models import Verdict
    from airflow_resume_provider.resume_param import ResumeSettings
    from airflow_resume_provider.run_record import RunRecord


@dataclass(frozen=True)
class RetryDecision:
    retry: bool
    #: The attempt number the retry is (or would have been), counted across the chain of runs.
    attempt: int
    note: str
    #: False when the decision may change later (e.g. the state folder was unreachable).
    final: bool = True


def failure_signature(failure: dict[str, Any] | None, task_id: str | None) -> list[Any] | None:
    """
    ``[task_id, exception type, message]`` of a failure, as recorded in the retry's run record; None
    for a failure without an exception (infrastructure): there is no error to repeat.
    """
    if not failure or not failure.get("exception_type"):
        return None
    return [task_id, failure.get("exception_type"), failure.get("message")]


def decide_retry(
    settings: ResumeSettings, verdict: Verdict, source_record: RunRecord | None
) -> RetryDecision:
    """
    Whether a failed run is retried automatically.

    :param source_record: the provider's signed record of the failed run, None for a run it did not create.
    """
    attempt = (source_record.retry_attempt if source_record is not None else 0) + 1
    failure = verdict.failure
    if verdict.reason_code == ReasonCode.MANUAL_KILL:
        return RetryDecision(False, attempt, "Not retried: the run was stopped by hand.")
    if verdict.reason_code == ReasonCode.STATE_UNREACHABLE:
        return RetryDecision(False, attempt, f"Retry postponed: {verdict.reason}", final=False)
    if not verdict.resumable:
        return RetryDecision(False, attempt, f"Not retried: {verdict.reason}")
    if attempt > settings.retries:
        return RetryDecision(
            False,
            attempt,
            f"Not retried: automatic retries exhausted ({settings.retries} of {settings.retries}).",
        )
    cause = cause_of(failure)
    if set(settings.retry_on) != set(ALL_CAUSES) and cause not in settings.retry_on:
        what = (
            f"was {describe(failure)}" if failure and cause else "has no known cause (its state was not read)"
        )
        return RetryDecision(
            False, attempt, f"Not retried: the failure {what}; retry_on = {', '.join(settings.retry_on)}"
        )
    # The exception filters apply only to failures that have an exception.
    has_exception = cause != FailureCause.INFRASTRUCTURE
    if settings.retry_exceptions and has_exception:
        kind = (failure or {}).get("exception_type")
        if kind not in settings.retry_exceptions:
            return RetryDecision(
                False,
                attempt,
                f"Not retried: the error {kind or '(none recorded)'} is not in retry_exceptions "
                f"{settings.retry_exceptions}.",
            )
    if settings.retry_message_pattern and has_exception:
        message = (failure or {}).get("message") or ""
        if not re.search(settings.retry_message_pattern, message):
            return RetryDecision(
                False,
                attempt,
                "Not retried: the error message does not match retry_message_pattern "
                f"{settings.retry_message_pattern!r}.",
            )
    if settings.stop_on_repeated_error:
        current = failure_signature(failure, verdict.failed_task_id)
        previous = source_record.parent_failure if source_record is not None else None
        if current is not None and previous and current == list(previous):
            return RetryDecision(
                False,
                attempt,
                f"Not retried: task {verdict.failed_task_id!r} failed twice in a row with the same error "
                f"({current[1]}: {current[2]}); retrying again would not help.",
            )
    return RetryDecision(True, attempt, "")

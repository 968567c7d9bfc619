"""
Whether a failed run is retried automatically: ``decide_retry`` on real settings and verdicts.

The note of each decision is written in the failed run's note, so the words are checked as well. The
previous retry's record is read as the scheduler reads it: signed, stored as JSON, checked for its run.
"""

from __future__ import annotations

import json

import pytest

from airflow_resume_provider.causes import infrastructure_failure
from airflow_resume_provider.models import Plan, PlanStep, ReasonCode, Verdict
from airflow_resume_provider.resume_param import parse_settings
from airflow_resume_provider.retry.decision import RetryDecision, decide_retry, failure_signature
from airflow_resume_provider.run_record import RunRecord, check, check_quietly, resumed_run_id, sign
from airflow_resume_provider.state.model import FailureRecord

DAG_ID = "etl"
RUN_ID = "scheduled__2024-01-02T00:00:00+00:00"
WHERE = f"DAG {DAG_ID!r}, run {RUN_ID!r}"
ERROR_TYPE = "ConnectionError"
ERROR_MESSAGE = "warehouse unreachable: timed out after 30s"
PLAN = [
    PlanStep(
        task_id="extract",
        task_type="PythonOperator",
        action="restored",
        source=f"dag_id={DAG_ID}/run_id={RUN_ID}/task_id=transform/attempt=1.resume.json",
        xcom_keys=["return_value"],
    ),
    PlanStep(task_id="transform", task_type="PythonOperator", action="run", resume_point=True),
    PlanStep(task_id="load", task_type="BashOperator", action="run"),
]


def failure(exception_type: str = ERROR_TYPE, message: str = ERROR_MESSAGE) -> dict:
    return FailureRecord(
        exception_type=exception_type, message=message, try_number=1, recorded_at="2024-01-02T00:10:00+00:00"
    ).model_dump()


def verdict(
    *,
    code: str | None = None,
    reason: str | None = None,
    failure_: dict | None = None,
    failed_task_id: str = "transform",
) -> Verdict:
    """A verdict for a run whose 'transform' task failed; resumable unless a reason code is given."""
    return Verdict(
        dag_id=DAG_ID,
        dag_run_id=RUN_ID,
        resumable=code is None,
        reason_code=code,
        reason=reason,
        failed_task_id=failed_task_id,
        resume_task_id=failed_task_id,
        failure=failure() if failure_ is None else failure_,
        plan=Plan(resume_task_id=failed_task_id, tasks=PLAN),
        resumed_run_id=None,
        lineage={},
    )


def settings(**values):
    return parse_settings({"retries": 3, **values}, dag_id=DAG_ID)


def read_back(run_id: str, record: RunRecord) -> RunRecord:
    """``record`` as the scheduler reads it from the retry run's conf: signed, stored as JSON, checked."""
    run_conf = json.loads(json.dumps({"day": "2024-01-01", "__resume__": sign(DAG_ID, run_id, record)}))
    checked = check(DAG_ID, run_id, run_conf)
    assert checked.record is not None, checked.ignored
    return checked.record


def record_after(attempt: int, task_id: str = "transform", error=(ERROR_TYPE, ERROR_MESSAGE)) -> RunRecord:
    """The record of the run created by retry ``attempt``, which failed again."""
    run_id = resumed_run_id(DAG_ID, RUN_ID, RUN_ID, attempt)
    record = RunRecord(
        parent_run_id=RUN_ID,
        root_run_id=RUN_ID,
        resume_count=attempt,
        resumed_at_task_id=task_id,
        kind="retry",
        retry_attempt=attempt,
        parent_failure=[task_id, *error],
    )
    return read_back(run_id, record)


# --- allowed ------------------------------------------------------------------------------------------


def test_first_failure_is_retried_as_attempt_one():
    assert decide_retry(settings(), verdict(), None) == RetryDecision(True, 1, "")


def test_attempt_counts_on_from_the_previous_retry():
    different = record_after(1, error=(ERROR_TYPE, "warehouse unreachable: connection refused"))
    decision = decide_retry(settings(), verdict(), different)
    assert decision.retry is True
    assert decision.attempt == 2


def test_last_allowed_attempt_is_retried():
    decision = decide_retry(settings(retries=2, stop_on_repeated_error=False), verdict(), record_after(1))
    assert (decision.retry, decision.attempt) == (True, 2)


# --- not resumable ------------------------------------------------------------------------------------


def test_run_stopped_by_hand_is_never_retried():
    reason = (
        f"{WHERE}: task 'transform' was set to failed by admin; a run stopped on purpose is never resumed."
    )
    decision = decide_retry(settings(), verdict(code=ReasonCode.MANUAL_KILL, reason=reason), None)
    assert decision == RetryDecision(False, 1, "Not retried: the run was stopped by hand.", final=True)


def test_unreachable_state_folder_postpones_the_decision():
    reason = f"{WHERE}: the state folder cannot be reached: timed out. Try again when it is back."
    decision = decide_retry(settings(), verdict(code=ReasonCode.STATE_UNREACHABLE, reason=reason), None)
    assert decision.retry is False
    assert decision.final is False
    assert decision.note == f"Retry postponed: {reason}"


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (
            ReasonCode.STRUCTURE_CHANGED,
            f"{WHERE}: the DAG's structure changed since the run: task 'load' was removed. Trigger a new run "
            "instead.",
        ),
        (ReasonCode.STATE_INVALID, f"{WHERE}: State file x failed its integrity check."),
        (
            ReasonCode.STATE_EXPIRED,
            f"{WHERE}: its state expired on 2024-02-01 00:10 UTC, 30 days after the run ended ([resume] "
            "retention_days = 30); its state files may have been deleted, so it is not resumed.",
        ),
    ],
)
def test_other_non_resumable_runs_are_not_retried_and_say_why(code, reason):
    decision = decide_retry(settings(), verdict(code=code, reason=reason), None)
    assert decision == RetryDecision(False, 1, f"Not retried: {reason}", final=True)


def test_manual_kill_is_reported_even_when_retries_are_exhausted():
    decision = decide_retry(
        settings(retries=1), verdict(code=ReasonCode.MANUAL_KILL, reason="killed"), record_after(1)
    )
    assert decision.note == "Not retried: the run was stopped by hand."


# --- exhausted ----------------------------------------------------------------------------------------


def test_retries_exhausted():
    decision = decide_retry(settings(retries=2, stop_on_repeated_error=False), verdict(), record_after(2))
    assert decision == RetryDecision(
        False, 3, "Not retried: automatic retries exhausted (2 of 2).", final=True
    )


def test_exhaustion_is_reported_before_the_error_filters():
    chosen = settings(retries=1, retry_exceptions=["TimeoutError"])
    decision = decide_retry(chosen, verdict(), record_after(1))
    assert decision.note == "Not retried: automatic retries exhausted (1 of 1)."


# --- retry_exceptions ---------------------------------------------------------------------------------


def test_listed_exception_type_is_retried():
    decision = decide_retry(settings(retry_exceptions=["TimeoutError", ERROR_TYPE]), verdict(), None)
    assert decision.retry is True


def test_unlisted_exception_type_is_not_retried():
    chosen = settings(retry_exceptions=["TimeoutError", ERROR_TYPE])
    decision = decide_retry(chosen, verdict(failure_=failure("ValueError", "bad row 7")), None)
    assert decision == RetryDecision(
        False,
        1,
        "Not retried: the error ValueError is not in retry_exceptions ['TimeoutError', 'ConnectionError'].",
    )


def test_failure_of_unknown_cause_is_not_retried_when_exceptions_are_listed():
    chosen = settings(retry_exceptions=[ERROR_TYPE])
    decision = decide_retry(chosen, verdict(failure_={}), None)
    assert decision.retry is False
    assert (
        decision.note
        == "Not retried: the error (none recorded) is not in retry_exceptions ['ConnectionError']."
    )


# --- retry_message_pattern ----------------------------------------------------------------------------


def test_message_matching_the_pattern_anywhere_is_retried():
    decision = decide_retry(settings(retry_message_pattern=r"timed out|refused"), verdict(), None)
    assert decision.retry is True


def test_message_not_matching_the_pattern_is_not_retried():
    chosen = settings(retry_message_pattern=r"^HTTP 5\d\d")
    decision = decide_retry(chosen, verdict(), None)
    assert decision.retry is False
    assert (
        decision.note
        == "Not retried: the error message does not match retry_message_pattern '^HTTP 5\\\\d\\\\d'."
    )


# --- stop_on_repeated_error ---------------------------------------------------------------------------


def test_same_task_failing_twice_with_the_same_error_is_not_retried():
    decision = decide_retry(settings(), verdict(), record_after(1))
    assert decision.retry is False
    assert decision.attempt == 2
    assert decision.note == (
        f"Not retried: task 'transform' failed twice in a row with the same error "
        f"({ERROR_TYPE}: {ERROR_MESSAGE}); retrying again would not help."
    )


@pytest.mark.parametrize(
    "previous",
    [
        record_after(1, error=(ERROR_TYPE, "warehouse unreachable: connection refused")),
        record_after(1, error=("TimeoutError", ERROR_MESSAGE)),
        record_after(1, task_id="extract"),
    ],
    ids=["other-message", "other-type", "other-task"],
)
def test_a_different_repeated_failure_is_retried(previous):
    decision = decide_retry(settings(), verdict(), previous)
    assert (decision.retry, decision.attempt) == (True, 2)


def test_same_error_is_retried_when_stop_on_repeated_error_is_off():
    decision = decide_retry(settings(stop_on_repeated_error=False), verdict(), record_after(1))
    assert (decision.retry, decision.attempt) == (True, 2)


def test_previous_failure_without_a_record_does_not_stop_the_retry():
    marker = record_after(1).model_copy(update={"parent_failure": None})
    assert decide_retry(settings(), verdict(), marker).retry is True


def test_a_retry_created_for_a_failure_stops_at_the_same_failure():
    """What the scheduler records in a retry (``failure_signature``) is what it compares the next time."""
    first = verdict()
    record = RunRecord(
        parent_run_id=RUN_ID,
        root_run_id=RUN_ID,
        resume_count=1,
        kind="retry",
        retry_attempt=1,
        parent_failure=failure_signature(first.failure, first.failed_task_id),
    )
    previous = read_back(resumed_run_id(DAG_ID, RUN_ID, RUN_ID, 1), record)

    decision = decide_retry(settings(), verdict(), previous)
    assert (decision.retry, decision.attempt) == (False, 2)
    assert "failed twice in a row with the same error" in decision.note


def testfailure_signature_is_a_json_list_of_task_type_and_message():
    assert failure_signature(failure(), "transform") == ["transform", ERROR_TYPE, ERROR_MESSAGE]
    assert failure_signature(None, "transform") is None
    assert failure_signature({}, "transform") is None
    assert failure_signature(infrastructure_failure(1), "transform") is None  # no error to repeat


# --- records the provider did not write ---------------------------------------------------------------


@pytest.mark.parametrize(
    "entry",
    [
        {"root_run_id": RUN_ID, "resume_count": 3, "kind": "retry", "retry_attempt": 3},
        {"root_run_id": RUN_ID, "resume_count": 1, "retry_attempt": -1000, "signature": "0" * 64},
        {
            "root_run_id": RUN_ID,
            "resume_count": 1,
            "retry_attempt": 0,
            "parent_failure": ["transform", ERROR_TYPE, ERROR_MESSAGE],
        },
    ],
    ids=["claims-exhausted", "negative-attempt", "claims-same-error"],
)
def test_a_forged_retry_record_neither_exhausts_nor_stops_the_retries(entry):
    # Anyone who may trigger a run can write conf["__resume__"]; only a signed record counts.
    run_conf = json.loads(json.dumps({"__resume__": entry}))
    own = check_quietly(DAG_ID, RUN_ID, run_conf)
    assert own.record is None
    assert "ignored" in own.ignored

    assert decide_retry(settings(retries=1), verdict(), own.record) == RetryDecision(True, 1, "")


def test_a_record_signed_for_another_run_does_not_count_for_this_one():
    copied = {"__resume__": sign(DAG_ID, "resume__other__3__0123456789", record_after(3))}
    own = check(DAG_ID, RUN_ID, json.loads(json.dumps(copied)))
    assert own.record is None
    assert decide_retry(settings(retries=3), verdict(), own.record).attempt == 1


# --- retry_on: the failure's cause --------------------------------------------------------------------


def recorded(exception_type: str, cause: str) -> dict:
    return {**failure(exception_type, "boom"), "cause": cause}


def test_by_default_every_cause_is_retried():
    for failure_ in (recorded("ValueError", "error"), recorded("AirflowTaskTimeout", "timeout")):
        assert decide_retry(settings(), verdict(failure_=failure_), None).retry is True
    assert decide_retry(settings(), verdict(failure_=infrastructure_failure(1)), None).retry is True


def test_an_error_in_the_code_is_not_retried_when_only_infrastructure_is():
    chosen = settings(retry_on=["infrastructure"])
    decision = decide_retry(chosen, verdict(failure_=recorded("ValueError", "error")), None)
    assert decision == RetryDecision(
        False,
        1,
        "Not retried: the failure was an error in the task's code (ValueError); retry_on = infrastructure",
    )


def test_a_timeout_is_not_retried_when_only_infrastructure_and_errors_are():
    chosen = settings(retry_on=["infrastructure", "error"])
    decision = decide_retry(chosen, verdict(failure_=recorded("AirflowTaskTimeout", "timeout")), None)
    assert decision.retry is False
    assert decision.note == (
        "Not retried: the failure was a timeout (AirflowTaskTimeout); retry_on = infrastructure, error"
    )


def test_a_killed_task_is_not_retried_when_only_errors_are():
    decision = decide_retry(settings(retry_on=["error"]), verdict(failure_=infrastructure_failure(1)), None)
    assert decision.retry is False
    assert decision.note == (
        "Not retried: the failure was in the infrastructure: the task recorded no error of its own (killed "
        "by a signal, out of memory, lost worker, heartbeat timeout, executor or pod failure); retry_on = error"
    )


def test_a_killed_task_is_retried_when_infrastructure_is():
    chosen = settings(retry_on=["infrastructure"])
    assert decide_retry(chosen, verdict(failure_=infrastructure_failure(1)), None) == RetryDecision(
        True, 1, ""
    )


def test_an_unknown_cause_is_not_retried_when_retry_on_is_narrowed():
    decision = decide_retry(settings(retry_on=["infrastructure"]), verdict(failure_={}), None)
    assert decision.retry is False
    assert decision.note == (
        "Not retried: the failure has no known cause (its state was not read); retry_on = infrastructure"
    )


def test_the_exception_filters_do_not_apply_to_an_infrastructure_failure():
    chosen = settings(retry_exceptions=["TimeoutError"], retry_message_pattern="refused")
    assert decide_retry(chosen, verdict(failure_=infrastructure_failure(1)), None).retry is True


def test_the_exception_filters_still_apply_to_a_timeout():
    chosen = settings(retry_on=["timeout"], retry_exceptions=["ConnectionError"])
    decision = decide_retry(chosen, verdict(failure_=recorded("AirflowTaskTimeout", "timeout")), None)
    assert decision.retry is False
    assert "the error AirflowTaskTimeout is not in retry_exceptions" in decision.note


def test_an_infrastructure_failure_twice_in_a_row_is_retried():
    previous = record_after(1).model_copy(update={"parent_failure": None})
    decision = decide_retry(settings(), verdict(failure_=infrastructure_failure(1)), previous)
    assert (decision.retry, decision.attempt) == (True, 2)


def test_exhaustion_is_reported_before_the_cause():
    chosen = settings(retries=1, retry_on=["infrastructure"])
    decision = decide_retry(chosen, verdict(failure_=recorded("ValueError", "error")), record_after(1))
    assert "automatic retries exhausted (1 of 1)" in decision.note

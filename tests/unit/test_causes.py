"""
Failure causes: how a failure is classified when the task records it, when a state file is read, and
when the failed attempt recorded nothing (killed by a signal, lost worker): the verdict's ``failure``.
"""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowSensorTimeout, AirflowTaskTimeout, TaskDeferralTimeout

from airflow_resume_provider import capture
from airflow_resume_provider.causes import (
    ALL_CAUSES,
    FailureCause,
    cause_of_exception,
    describe,
    recorded_cause,
)
from airflow_resume_provider.models import ReasonCode
from airflow_resume_provider.resumability import decide
from airflow_resume_provider.state.chain import StateChain
from airflow_resume_provider.state.model import FailureRecord
from tests.unit.builders import facts, record, ref, transform_chain


class SlowQuery(AirflowTaskTimeout):
    pass


def test_the_cause_names_are_the_enum_values():
    assert (
        ALL_CAUSES == tuple(cause.value for cause in FailureCause) == ("infrastructure", "timeout", "error")
    )


@pytest.mark.parametrize(
    ("error", "cause"),
    [
        (ValueError("bad row"), "error"),
        (KeyError("id"), "error"),
        (SystemExit(1), "error"),
        (AirflowSensorTimeout("waited too long"), "error"),  # the sensor's own limit, not execution_timeout
        (AirflowTaskTimeout(), "timeout"),
        (TaskDeferralTimeout(), "timeout"),
        (SlowQuery(), "timeout"),
        ("a message without an exception", "error"),
    ],
)
def test_an_exception_the_task_raised_is_a_timeout_or_an_error(error, cause):
    assert cause_of_exception(error) == cause


@pytest.mark.parametrize(
    ("exception_type", "cause", "expected"),
    [
        ("ValueError", None, "error"),  # a record written before causes were recorded
        ("AirflowTaskTimeout", None, "timeout"),
        ("TaskDeferralTimeout", None, "timeout"),
        ("ValueError", "error", "error"),
        ("AirflowTaskTimeout", "timeout", "timeout"),
    ],
)
def test_a_recorded_failure_keeps_its_cause_and_old_records_get_one(exception_type, cause, expected):
    assert recorded_cause(exception_type, cause) == expected


def test_a_failure_record_without_a_cause_still_reads():
    old = {"exception_type": "ValueError", "message": "m", "try_number": 1, "recorded_at": "2024-01-02"}
    assert FailureRecord.model_validate(old).cause is None


def test_the_task_records_its_failure_with_the_cause(monkeypatch):
    class TI:
        dag_id, run_id, task_id, map_index, try_number = "d", "r", "t", -1, 2

    written = []
    monkeypatch.setattr(capture, "resume_enabled", lambda ti: True)
    monkeypatch.setattr(capture, "_write", lambda ti, rec, handle=None: written.append(rec))
    for error in (ValueError("bad row"), AirflowTaskTimeout("Timeout, PID: 1")):
        key = capture._attempt_key(TI())
        monkeypatch.setitem(capture._written, key, (object(), record("t")))
        monkeypatch.setattr(capture, "_attempted", {key})
        capture.record_failure(TI(), error)
    assert [(r.failure.exception_type, r.failure.cause, r.failure.try_number) for r in written] == [
        ("ValueError", "error", 2),
        ("AirflowTaskTimeout", "timeout", 2),
    ]


# --- the verdict's failure ------------------------------------------------------------------------------


def chain_of(head) -> StateChain:
    return StateChain(head=head, head_ref=ref(head.identity.task_id), records=[(head, ref("transform"))])


def test_a_recorded_exception_is_an_error_in_the_verdict():
    failure = decide(facts()).failure
    assert failure["exception_type"] == "ConnectionError"
    assert failure["cause"] == "error"  # the builders' record has no cause: derived as it is read


def test_a_recorded_timeout_is_a_timeout_in_the_verdict():
    head = record("transform", upstream="extract").model_copy(
        update={
            "failure": FailureRecord(
                exception_type="AirflowTaskTimeout",
                message="Timeout, PID: 42",
                try_number=1,
                recorded_at="2024-01-02T03:10:00+00:00",
                cause="timeout",
            )
        }
    )
    failure = decide(facts(chain=chain_of(head))).failure
    assert failure["cause"] == "timeout"
    assert describe(failure) == "a timeout (AirflowTaskTimeout)"


def test_a_failed_attempt_that_recorded_nothing_was_the_infrastructure():
    # Killed by a signal (SIGKILL, OOM), lost worker, heartbeat timeout: the state file was written
    # before the task ran, and the task never got to add its failure.
    head = record("transform", upstream="extract", try_number=3)
    verdict = decide(facts(chain=chain_of(head)))
    assert verdict.resumable is True
    assert verdict.failure == {
        "exception_type": None,
        "message": None,
        "try_number": 3,
        "recorded_at": None,
        "cause": "infrastructure",
    }
    assert describe(verdict.failure).startswith(
        "in the infrastructure: the task recorded no error of its own"
    )


def test_a_run_stopped_by_hand_has_no_infrastructure_failure():
    head = record("transform", upstream="extract")
    verdict = decide(facts(chain=chain_of(head), manual_kill="stopped by hand"))
    assert verdict.failure is None


def test_a_resume_at_an_earlier_task_reads_no_failure():
    extract = record("extract")
    verdict = decide(facts(resume_task_id="extract", chain=chain_of(extract)))
    assert verdict.failure is None


def test_no_state_read_means_no_known_failure():
    missing = facts(chain=None, state_error_code=ReasonCode.STATE_MISSING, state_error="no state file")
    assert decide(missing).failure is None
    assert decide(facts(chain=transform_chain())).failure["cause"] == "error"

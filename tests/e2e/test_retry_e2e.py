"""Resume on retry with a real scheduler: bounded automatic retries, exactly once per failure."""

from __future__ import annotations

import signal
from datetime import datetime

import pytest

from tests.e2e.runs import (
    chain_runs,
    q,
    resume_runs,
    unique_logical_date,
    verdict,
    wait_for_chain_run,
    wait_for_note,
    xcom_value,
)
from tools.airflow_stack import wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def ledger(stack, tmp_path):
    def executed(dag_id: str) -> list[str]:
        path = tmp_path / f"{dag_id}.txt"
        return path.read_text().split() if path.exists() else []

    with stack.variables(resume_test_ledger_dir=str(tmp_path)):
        yield executed


# Release set: the scheduler listener's automatic retry, the main path.
@pytest.mark.release
def test_two_retries_resume_at_the_failed_task_until_success(stack, ledger):
    dag = "resume_test_retry_two"
    root = stack.trigger(dag)
    assert stack.wait_for_run(dag, root) == "failed"
    first = wait_for_chain_run(stack, dag, root, 1, timeout=60)
    assert stack.wait_for_run(dag, first) == "failed"
    second = wait_for_chain_run(stack, dag, root, 2, timeout=60)
    assert stack.wait_for_run(dag, second) == "success"

    assert ledger(dag) == ["first", "flaky", "flaky", "flaky", "last"]  # 'first' ran once in total
    assert stack.note(dag, first).startswith(f"Automatic retry 1 of 2: resumed from {root} at flaky")
    assert stack.note(dag, second).startswith(f"Automatic retry 2 of 2: resumed from {first} at flaky")
    assert f"Retried automatically as {first} (attempt 1 of 2)" in stack.note(dag, root)
    with stack.client() as c:
        verdict = c.get(f"/resume/api/v1/dags/{dag}/dagRuns/{second}").json()
    assert verdict["lineage"]["kind"] == "retry"
    assert verdict["lineage"]["retry_attempt"] == 2
    assert verdict["lineage"]["root_run_id"] == root


def test_one_retry_then_the_last_failure_says_retries_are_exhausted(stack, ledger):
    dag = "resume_test_retry_one"
    root = stack.trigger(dag)
    assert stack.wait_for_run(dag, root) == "failed"
    first = wait_for_chain_run(stack, dag, root, 1, timeout=60)
    assert stack.wait_for_run(dag, first) == "failed"
    wait_for_note(stack, dag, first, "automatic retries exhausted (1 of 1)")
    assert 2 not in chain_runs(stack, dag, root)
    assert ledger(dag) == ["first", "flaky", "flaky"]


def test_on_retry_false_reruns_every_task(stack, ledger):
    dag = "resume_test_retry_fresh"
    with stack.variables_from({f"{dag}_failures": "1"}):
        root = stack.trigger(dag)
        assert stack.wait_for_run(dag, root) == "failed"
        first = wait_for_chain_run(stack, dag, root, 1, timeout=60)
        assert stack.wait_for_run(dag, first) == "success"
    assert ledger(dag) == ["first", "flaky", "first", "flaky", "last"]
    assert stack.note(dag, first).startswith(f"Automatic retry 1 of 1: full rerun of {root}")


def test_on_retry_false_needs_no_state_files(stack, ledger):
    dag = "resume_test_retry_fresh_lost"
    with stack.variables_from({f"{dag}_failures": "1"}):
        root = stack.trigger(dag, conf={"region": "eu"}, logical_date=unique_logical_date())
        assert stack.wait_for_run(dag, root) == "failed"
        first = wait_for_chain_run(stack, dag, root, 1, timeout=60)
        assert stack.wait_for_run(dag, first) == "success"
    # The state of ``first`` was gone when the failure was retried: a resume would be refused.
    assert ledger(dag) == ["first", "flaky", "first", "flaky", "last"]
    assert stack.note(dag, first).startswith(f"Automatic retry 1 of 1: full rerun of {root}")
    assert stack.note(dag, root) == f"Retried automatically as {first} (attempt 1 of 1)."
    # The rerun ran with the failed run's recorded context: its logical date and its conf.
    with stack.client() as c:
        original = c.get(f"/api/v2/dags/{dag}/dagRuns/{q(root)}").json()
    seen = xcom_value(stack, dag, first, "first", key="seen")
    assert seen["region"] == "eu"
    assert datetime.fromisoformat(seen["logical_date"]) == datetime.fromisoformat(
        original["logical_date"].replace("Z", "+00:00")
    )


def test_the_same_error_twice_in_a_row_stops_the_retries(stack, ledger):
    dag = "resume_test_retry_same_error"
    with stack.variables_from({f"{dag}_failures": "10"}):
        root = stack.trigger(dag)
        assert stack.wait_for_run(dag, root) == "failed"
        first = wait_for_chain_run(stack, dag, root, 1, timeout=60)
        assert stack.wait_for_run(dag, first) == "failed"
    note = wait_for_note(stack, dag, first, "failed twice in a row with the same error")
    assert "ConnectionError: backend unavailable" in note
    assert 2 not in chain_runs(stack, dag, root)


def test_errors_not_listed_in_retry_exceptions_are_not_retried(stack, ledger):
    dag = "resume_test_retry_filtered"
    root = stack.trigger(dag)
    assert stack.wait_for_run(dag, root) == "failed"
    wait_for_note(stack, dag, root, "Not retried: the error ConnectionError is not in retry_exceptions")
    assert 1 not in chain_runs(stack, dag, root)


def test_a_run_stopped_by_hand_is_not_retried(stack, ledger):
    dag = "resume_test_retry_sleepy"
    root = stack.trigger(dag)
    stack.fail_by_hand(dag, root, "flaky")
    assert stack.wait_for_run(dag, root) == "failed"
    wait_for_note(stack, dag, root, "Not retried: the run was stopped by hand.")
    assert 1 not in chain_runs(stack, dag, root)


def test_a_scheduler_killed_right_after_the_failure_retries_exactly_once(stack, ledger):
    dag = "resume_test_retry_crash"
    with stack.variables_from({f"{dag}_failures": "1"}):
        root = stack.trigger(dag)
        wait_for(
            lambda: stack.run_state(dag, root) == "failed", timeout=180, interval=0.1, what=f"{root} failed"
        )
        stack.stop_component("scheduler", sig=signal.SIGKILL)
        stack.start_component("scheduler", ["scheduler"])
        first = wait_for_chain_run(stack, dag, root, 1, timeout=120)
        assert stack.wait_for_run(dag, first) == "success"
    assert resume_runs(stack, dag, root) == [first]
    assert ledger(dag).count("first") == 1


# --- retry_on: only what the machine broke is retried ---------------------------------------------------


def test_an_error_in_the_code_is_not_retried_when_only_infrastructure_is(stack, ledger):
    dag = "resume_test_retry_code_error"
    root = stack.trigger(dag)
    assert stack.wait_for_run(dag, root) == "failed"
    expected = (
        "Not retried: the failure was an error in the task's code (ValueError); retry_on = infrastructure"
    )
    assert wait_for_note(stack, dag, root, "Not retried") == expected
    assert 1 not in chain_runs(stack, dag, root)
    assert ledger(dag) == ["first", "flaky"]
    failure = verdict(stack, dag, root)["failure"]
    assert (failure["cause"], failure["exception_type"]) == ("error", "ValueError")


def test_a_task_killed_by_sigkill_is_retried_once_and_succeeds(stack, ledger):
    dag = "resume_test_retry_killed"
    with stack.variables_from({f"{dag}_failures": "1"}):
        root = stack.trigger(dag)
        assert stack.wait_for_run(dag, root) == "failed"
        first = wait_for_chain_run(stack, dag, root, 1, timeout=60)
        assert stack.wait_for_run(dag, first) == "success"
    # The supervisor failed the task from its exit code: the attempt recorded no exception of its own.
    failure = verdict(stack, dag, root)["failure"]
    assert failure["cause"] == "infrastructure"
    assert failure["exception_type"] is None
    assert ledger(dag) == ["first", "flaky", "flaky", "last"]
    assert stack.note(dag, first).startswith(f"Automatic retry 1 of 1: resumed from {root} at flaky")
    assert stack.note(dag, root) == f"Retried automatically as {first} (attempt 1 of 1)."
    assert resume_runs(stack, dag, root) == [first]

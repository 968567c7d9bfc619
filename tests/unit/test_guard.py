"""The provider's guard: a callback it runs inside Airflow or user code never raises into them."""

from __future__ import annotations

import asyncio
import logging

import pytest

from airflow_resume_provider.guard import guarded, never_raises


def test_a_failing_callback_is_logged_and_returns_none(caplog):
    @never_raises("Recording something", "the task")
    def callback(value):
        raise RuntimeError(f"storage down for {value}")

    with caplog.at_level(logging.WARNING, logger="airflow_resume_provider.guard"):
        assert callback("x") is None
    assert "Recording something failed; no impact on the task." in caplog.text
    assert "storage down for x" in caplog.text  # the traceback names what failed


def test_a_callback_that_works_returns_its_value_and_keeps_its_signature():
    @never_raises("Adding")
    def add(previous_state, task_instance=0):
        return previous_state + task_instance

    assert add(1, task_instance=2) == 3
    # pluggy matches hook arguments by name through the wrapper.
    assert add.__wrapped__.__code__.co_varnames[:2] == ("previous_state", "task_instance")


def test_a_guarded_block_stops_at_the_failure_and_the_caller_goes_on(caplog):
    reached = []
    with caplog.at_level(logging.WARNING), guarded("Announcing", "the scheduler"):
        reached.append(1)
        raise ValueError("refused")
    assert reached == [1]
    assert "Announcing failed; no impact on the scheduler." in caplog.text


def test_a_base_exception_is_airflows_and_passes_through():
    # A task's timeout or a kill must still stop the task.
    @never_raises("Waiting")
    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted()
    with pytest.raises(SystemExit), guarded("Exiting"):
        raise SystemExit(1)


class FakeTaskInstance:
    """Stands for the Task SDK's RuntimeTaskInstance: a sync and an async push."""

    def __init__(self):
        self.pushed = []

    def xcom_push(self, key, value):
        self.pushed.append((key, value))

    async def axcom_push(self, key, value):
        self.pushed.append((key, value))


@pytest.fixture
def tracked(monkeypatch):
    from airflow_resume_provider import compat

    cls = type("RuntimeTaskInstance", (FakeTaskInstance,), {})
    monkeypatch.setattr(compat, "runtime_task_instance_class", lambda: cls)
    return cls


def test_the_key_tracker_sees_sync_and_async_pushes(tracked):
    from airflow_resume_provider.compat import wrap_xcom_push

    seen = []
    wrap_xcom_push(lambda ti, key, push: seen.append(key))
    ti = tracked()
    ti.xcom_push("one", 1)
    asyncio.run(ti.axcom_push("two", 2))
    assert ti.pushed == [("one", 1), ("two", 2)]
    assert seen == ["one", "two"]


def test_a_failing_key_tracker_never_reaches_the_tasks_push(tracked, caplog):
    # E.g. the XCom backend refuses the provider's announcement: the task's own push stands.
    from airflow_resume_provider.compat import wrap_xcom_push

    def refuse(ti, key, push):
        raise ValueError("this XCom backend refuses 'resume_state_ref' values")

    wrap_xcom_push(refuse)
    ti = tracked()
    with caplog.at_level(logging.WARNING):
        ti.xcom_push("one", 1)
        asyncio.run(ti.axcom_push("two", 2))
    assert ti.pushed == [("one", 1), ("two", 2)]
    assert caplog.text.count("Tracking the XCom key") == 2
    assert "no impact on the task" in caplog.text


def test_the_policies_never_raise_but_an_invalid_dag_is_still_refused(monkeypatch):
    from airflow.exceptions import AirflowClusterPolicyViolation
    from airflow.sdk import DAG

    from airflow_resume_provider import policy

    def broken(dag):
        raise RuntimeError("unexpected")

    monkeypatch.setattr(policy, "settings_for", broken)
    dag = DAG("any", schedule=None)
    policy.dag_policy(dag)  # an error of the provider's: the DAG is left as it is
    policy.task_policy(type("Task", (), {"dag": dag})())

    monkeypatch.undo()
    with pytest.raises(AirflowClusterPolicyViolation, match="resume"):
        policy.dag_policy(DAG("bad", schedule=None, params={"resume": {"retries": -1}}))

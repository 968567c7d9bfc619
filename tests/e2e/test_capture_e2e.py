"""
What the capture keeps, end to end: a task whose XCom backend refuses the provider's values runs as it
would without the provider; a deferred task keeps every XCom it pushed, before and after the deferral.
"""

from __future__ import annotations

import pytest

from tests.e2e.runs import q, refused, resumed, verdict, xcom_value
from tools.airflow_stack import wait_for

pytestmark = pytest.mark.e2e


def task_log(stack, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
    with stack.client() as c:
        resp = c.get(f"/api/v2/dags/{dag_id}/dagRuns/{q(run_id)}/taskInstances/{task_id}/logs/{try_number}")
    return resp.text if resp.status_code == 200 else f"{resp.status_code}: {resp.text[:300]}"


def test_a_task_whose_xcom_backend_refuses_the_announcement_runs_as_without_the_provider(stack):
    # The stack's XCom backend (tests/xcom_backend.py) refuses every resume_state_ref of this DAG.
    dag_id = "resume_test_xcom_rejected"
    with stack.variables(resume_test_xcom_rejected_fail="true"):
        run_id = stack.trigger(dag_id)
        assert stack.wait_for_run(dag_id, run_id) == "failed"

    tis = stack.task_instances(dag_id, run_id)
    # The keys pushed after the refused announcement are stored; the task succeeds.
    assert (tis["pushes"]["state"], tis["pushes"]["try_number"]) == ("success", 1)
    assert xcom_value(stack, dag_id, run_id, "pushes", "extra") == {"id": 1}
    assert xcom_value(stack, dag_id, run_id, "pushes", "second") == 2
    assert xcom_value(stack, dag_id, run_id, "pushes") == "pushed"
    # The next task fails with its own error, nothing of the provider's.
    assert (tis["fails"]["state"], tis["fails"]["try_number"]) == ("failed", 1)
    log = wait_for(
        lambda: (text := task_log(stack, dag_id, run_id, "fails")) and "fails on purpose" in text and text,
        timeout=60,
        what="the log of the failed task",
    )
    assert "ValueError" in log

    body = refused(
        stack,
        dag_id,
        run_id,
        "state_not_recorded",
        "the state of task 'fails' was not recorded",
        "could not be announced",
        "this XCom backend refuses 'resume_state_ref' values of DAG 'resume_test_xcom_rejected'",
    )
    assert body["failed_task_id"] == "fails"


def test_a_deferred_task_keeps_every_xcom_in_the_resumed_run(stack):
    # ``defers`` pushes a key, defers (the triggerer fires after a second), then pushes one with
    # xcom_push and one with axcom_push in the method it resumes in.
    dag_id = "resume_test_deferrable"
    keys = ["after_defer", "async_push", "before_defer"]
    with stack.variables(resume_test_deferrable_fail="true"):
        run_id = stack.trigger(dag_id)
        assert stack.wait_for_run(dag_id, run_id, timeout=240) == "failed"

    tis = stack.task_instances(dag_id, run_id)
    assert (tis["defers"]["state"], tis["consume"]["state"]) == ("success", "failed")
    assert xcom_value(stack, dag_id, run_id, "defers", "resume_state_ref")["xcom_keys"] == keys
    body = verdict(stack, dag_id, run_id)
    assert body["resumable"] is True, body["reason"]
    assert [step["action"] for step in body["plan"]["tasks"]] == ["restored", "run"]

    new_run = resumed(stack, dag_id, run_id)
    assert stack.wait_for_run(dag_id, new_run, timeout=240) == "success"

    tis = stack.task_instances(dag_id, new_run)
    assert (tis["defers"]["state"], tis["defers"]["try_number"]) == ("success", 0)  # restored, not run
    assert xcom_value(stack, dag_id, new_run, "consume") == {
        "return_value": "resumed",
        "before_defer": "pushed before defer()",
        "after_defer": "pushed after the trigger fired",
        "async_push": "pushed with axcom_push",
    }

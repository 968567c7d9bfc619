"""
What changes between a failure and its resume, against a real api-server, scheduler and dag-processor.

- params changed before the resume: refused as ``params_invalid`` while they refuse the original
  values (never a 500), and resumed with the original values once they accept them again; an automatic
  retry refused for that reason is noted once;
- a restored task of a resumed run is a resume point too, and a skipped task stays skipped;
- state is found where it was written, also after ``[resume] state_folder`` changed;
- a log backend that cannot hold files is named, with the fix, by the verdict, the retry note and
  ``airflow resume check``;
- a manual "set to failed" counts only for the attempt it stopped, and only when Airflow did it;
- a resumed task sees the run's params, not an earlier task's own task-level params;
- a task failure added to a state file after a later task linked to it does not break the link.

Most DAGs are written by the tests into the stack's DAG folder (``stack.dags``).
"""

from __future__ import annotations

import json
import os
import re
import uuid

import httpx
import pytest

from tests.e2e.runs import (
    chain_runs,
    q,
    refused,
    restarted_with,
    resumed,
    unique_logical_date,
    verdict,
    wait_for_note,
    write_dag,
    xcom_value,
)
from tools.airflow_stack import stays, wait_for

pytestmark = pytest.mark.e2e

ETL = "resume_example_etl"
CHAIN = "resume_test_chain"
RETRY_ONE = "resume_test_retry_one"


# --- helpers ----------------------------------------------------------------------------------------


def finished(stack, dag_id: str, run_id: str) -> str:
    """The run's final state; for a failed run, the failing tasks' logs come with the assertion message."""
    state = stack.wait_for_run(dag_id, run_id, timeout=300)
    if state == "failed":
        print(f"run {run_id} failed:")
        with stack.client() as c:
            for task_id, ti in stack.task_instances(dag_id, run_id).items():
                print(f"  {task_id}: {ti['state']} (try {ti['try_number']})")
                if ti["state"] == "failed" and ti["try_number"]:
                    url = f"/api/v2/dags/{dag_id}/dagRuns/{q(run_id)}/taskInstances/{task_id}/logs/{ti['try_number']}"
                    print(c.get(url).text[-4000:])
    return state


def wait_for_task(stack, dag_id: str, run_id: str, task_id: str, state: str, try_number: int | None = None):
    def reached():
        ti = stack.task_instances(dag_id, run_id).get(task_id, {})
        return ti.get("state") == state and (try_number is None or ti.get("try_number") == try_number) and ti

    return wait_for(
        reached, timeout=240, interval=1, what=f"{task_id} of {run_id} {state} (try {try_number or 'any'})"
    )


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


# --- 1. params changed before the resume ---------------------------------------------------------------

PARAMS_DAG = """
from airflow.sdk import DAG, Param, Variable, task


def seen(params):
    return {"region": params["region"], "batch": params.get("batch")}


with DAG("resume_test_params_change", schedule=None, params=__PARAMS__):

    @task
    def one(params=None):
        return seen(params)

    @task
    def two(value, params=None):
        if Variable.get("resume_test_params_change_fail", default="") == "true":
            raise ValueError("two fails on purpose")
        return seen(params)

    @task
    def three(value, params=None):
        return seen(params)

    three(two(one()))
"""


# Release set: params validation differs by release; uses the `airflow resume` CLI hook.
@pytest.mark.release
def test_params_that_refuse_the_original_values_are_refused_then_resumed_once_they_accept_them(stack):
    dag = "resume_test_params_change"
    with stack.variables(resume_test_params_change_fail="true"):
        write_dag(
            stack,
            dag,
            PARAMS_DAG.replace("__PARAMS__", '{"resume": True, "region": Param("eu", enum=["eu", "us"])}'),
        )
        run_id = stack.trigger(dag)
        assert stack.wait_for_run(dag, run_id) == "failed"

        # The enum lost the original value: nothing replays "eu" into it.
        write_dag(
            stack,
            dag,
            PARAMS_DAG.replace("__PARAMS__", '{"resume": True, "region": Param("us", enum=["us"])}'),
        )
        refused(stack, dag, run_id, "params_invalid", "region")
        for command in ("status", "run"):
            done = stack.cli("resume", command, dag, run_id, check=False)
            assert done.returncode == 3, f"resume {command} exited {done.returncode}: {done.stderr[-3000:]}"
            assert "Traceback" not in done.stdout + done.stderr, done.stderr[-3000:]

        # A compatible change (the value is accepted again, a new param with a default): resumed with the
        # original region and the new param's default.
        write_dag(
            stack,
            dag,
            PARAMS_DAG.replace(
                "__PARAMS__",
                '{"resume": True, "region": Param("eu", enum=["eu", "us"]), "batch": Param(10, type="integer")}',
            ),
        )
        stack.set_variable("resume_test_params_change_fail", "false")
        new_run = resumed(stack, dag, run_id)
        assert finished(stack, dag, new_run) == "success"
    assert xcom_value(stack, dag, new_run, "two") == {"region": "eu", "batch": 10}
    assert xcom_value(stack, dag, new_run, "three") == {"region": "eu", "batch": 10}


PARAMS_RETRY_DAG = """
import time

from airflow.sdk import DAG, Param, Variable, task

with DAG("resume_test_params_retry", schedule=None, params=__PARAMS__):

    @task
    def one(params=None):
        return params["region"]

    @task
    def two(value, params=None):
        # Says which region it runs with: the worker parses the DAG file after the task is already
        # "running", so the test changes the file only once this task's inputs are fixed.
        Variable.set("resume_test_params_retry_started", params["region"])
        # Holds until the test changed the DAG and says "no" (at most 5 minutes), then fails: never
        # earlier, whatever a read of the Variable meanwhile answers.
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                if Variable.get("resume_test_params_retry_hold", default="") == "no":
                    break
            except Exception:
                pass
            time.sleep(1)
        raise ValueError("two fails on purpose")

    @task
    def three(value):
        return value

    three(two(one()))
"""


def test_an_automatic_retry_refused_by_changed_params_is_noted_once(stack):
    dag = "resume_test_params_retry"
    resume = '{"retries": 1, "on_retry": True}'
    with stack.variables(resume_test_params_retry_hold="yes", resume_test_params_retry_started=""):
        write_dag(
            stack,
            dag,
            PARAMS_RETRY_DAG.replace(
                "__PARAMS__", '{"resume": ' + resume + ', "region": Param("eu", enum=["eu", "us"])}'
            ),
        )
        root = stack.trigger(dag)
        wait_for_task(stack, dag, root, "two", "running")
        wait_for(
            lambda: stack.get_variable("resume_test_params_retry_started") == "eu",
            timeout=120,
            what='task "two" running with region "eu"',
        )
        # While "two" runs, the enum loses the value the run was triggered with.
        write_dag(
            stack,
            dag,
            PARAMS_RETRY_DAG.replace(
                "__PARAMS__", '{"resume": ' + resume + ', "region": Param("us", enum=["us"])}'
            ),
        )
        stack.set_variable("resume_test_params_retry_hold", "no")
        assert stack.wait_for_run(dag, root) == "failed"

    note = wait_for_note(stack, dag, root, "Not retried", "Retried automatically", "Retry postponed")
    assert "Not retried" in note and "region" in note, note
    assert note.count("Not retried") == 1, note
    stays(
        lambda: stack.note(dag, root) == note,
        seconds=stack.decision_window,
        what="the note unchanged after the decision",
    )
    assert chain_runs(stack, dag, root) == {}, "a retry was created although the params refuse the run"


# --- 2. resume points of a resumed run; skipped tasks ------------------------------------------------------


def test_a_task_restored_in_a_resumed_run_is_a_resume_point_of_that_run(stack, tmp_path):
    ledger = tmp_path / "ledger.txt"
    with stack.variables(resume_test_ledger=str(ledger), resume_test_fail_at="fourth"):
        # A logical date, for the templates of its BashOperator ({{ ds }}).
        root = stack.trigger(CHAIN, logical_date=unique_logical_date())
        assert stack.wait_for_run(CHAIN, root) == "failed"
        assert stack.task_instances(CHAIN, root)["fourth"]["state"] == "failed"
        second_run = resumed(stack, CHAIN, root)
        assert stack.wait_for_run(CHAIN, second_run) == "failed"
        assert stack.task_instances(CHAIN, second_run)["fourth"]["state"] == "failed"
        assert stack.task_instances(CHAIN, second_run)["second"]["try_number"] == 0  # restored, not run

        # "second" was restored in the failed resumed run: it is a valid resume point of that run.
        done = stack.cli("resume", "status", CHAIN, second_run, "--from-task", "second", check=False)
        assert done.returncode == 0, f"exit {done.returncode}: {done.stdout[-2000:]} {done.stderr[-3000:]}"
        html = httpx.get(
            f"{stack.url}/resume/ui/dags/{CHAIN}/dagRuns/{q(second_run)}",
            cookies={"_token": stack.token()},
            params={"from_task_id": "second"},
            timeout=60,
        )
        assert html.status_code == 200, html.text[:2000]
        points = re.findall(r'<li class="point" data-task="([^"]+)"', html.text)
        assert points == ["second"], f"resume point shown on the page: {points}"

        stack.set_variable("resume_test_fail_at", "")
        third_run = resumed(stack, CHAIN, second_run, {"from_task_id": "second"})
        assert finished(stack, CHAIN, third_run) == "success"
    steps = ledger.read_text().split()
    assert steps.count("first") == 1, steps
    assert steps.count("second") == 2, steps
    assert stack.task_instances(CHAIN, third_run)["first"]["try_number"] == 0


SKIPPED_DAG = """
from airflow.exceptions import AirflowSkipException  # the one import path from Airflow 3.2 to 3.3
from airflow.sdk import DAG, Variable, task

with DAG("resume_test_skipped", schedule=None, params={"resume": True}):

    @task
    def skip_me():
        raise AirflowSkipException("nothing to do today")

    @task(trigger_rule="none_failed")
    def gate():
        if Variable.get("resume_test_skipped_fail", default="") == "true":
            raise ValueError("gate fails on purpose")
        return "open"

    @task
    def last(value):
        return value

    opened = gate()
    skip_me() >> opened
    last(opened)
"""


def test_a_skipped_task_stays_skipped_in_the_resumed_run(stack):
    dag = "resume_test_skipped"
    with stack.variables(resume_test_skipped_fail="true"):
        write_dag(stack, dag, SKIPPED_DAG)
        root = stack.trigger(dag)
        assert stack.wait_for_run(dag, root) == "failed"
        assert stack.task_instances(dag, root)["skip_me"]["state"] == "skipped"

        stack.set_variable("resume_test_skipped_fail", "false")
        new_run = resumed(stack, dag, root)
        assert finished(stack, dag, new_run) == "success"
    tis = stack.task_instances(dag, new_run)
    assert tis["skip_me"]["state"] == "skipped", tis["skip_me"]
    assert tis["gate"]["state"] == "success" and tis["last"]["state"] == "success"


# --- 3. state is found where it was written ------------------------------------------------------------


def test_state_is_found_where_it_was_written_after_the_state_folder_changed(stack, tmp_path):
    with stack.variables(resume_example_fail="true"):
        run_id = stack.trigger(ETL)
        assert stack.wait_for_run(ETL, run_id) == "failed"
        assert verdict(stack, ETL, run_id)["resumable"] is True

        if stack.s3 is not None:  # logs on S3: another folder of the same bucket
            env = {
                "AIRFLOW__RESUME__STATE_FOLDER": "s3://airflow-logs/moved",
                "AIRFLOW__RESUME__STATE_CONN_ID": "aws_moto",
            }
        else:  # local logs: another local folder
            env = {"AIRFLOW__RESUME__STATE_FOLDER": str(tmp_path / "moved-state")}
        with restarted_with(stack, env):
            body = verdict(stack, ETL, run_id)
            assert body["resumable"] is True, body
            stack.set_variable("resume_example_fail", "false")
            new_run = resumed(stack, ETL, run_id)
            assert finished(stack, ETL, new_run) == "success"
    # The resumed run's own state went to the new folder.
    relative = f"dag_id={ETL}/run_id={new_run}/task_id=transform/attempt=1.resume.json"
    if stack.s3 is not None:
        stack.s3.head_object(Bucket="airflow-logs", Key=f"moved/{relative}")
    else:
        assert (tmp_path / "moved-state" / relative).is_file()


# --- 5. manual kills, precisely ----------------------------------------------------------------------

KILL_DAG = """
import time

from airflow.sdk import DAG, Variable, task


def make(dag_id):
    mode = dag_id + "_mode"
    with DAG(dag_id, schedule=None, params={"resume": True}) as dag:

        @task
        def before():
            return "ready"

        @task
        def flaky(value):
            # "wait": hold (at most 10 minutes) until the mode changes; then "fail" fails, else succeeds.
            deadline = time.monotonic() + 600
            while Variable.get(mode, default="ok") == "wait" and time.monotonic() < deadline:
                time.sleep(1)
            if Variable.get(mode, default="ok") == "fail":
                raise RuntimeError("flaky fails by itself")
            return value

        @task
        def after(value):
            return value

        after(flaky(before()))
    return dag


make("resume_test_kill_cleared")
make("resume_test_kill_denied")
"""


@pytest.fixture(scope="module")
def kill_dags(stack):
    stack.write_dag_file(
        "resume_test_kills", KILL_DAG, dag_ids=("resume_test_kill_cleared", "resume_test_kill_denied")
    )


def wait_for_task_process_gone(stack, dag_id: str, run_id: str, task_id: str) -> None:
    """Wait until the process of the task's current attempt ("airflow worker -- <ti id>") has ended."""
    import psutil

    title = f"airflow worker -- {stack.task_instances(dag_id, run_id)[task_id]['id']}"

    def gone():
        for proc in psutil.process_iter(["cmdline", "status"]):
            if " ".join(proc.info["cmdline"] or []).strip() == title and proc.info["status"] != "zombie":
                return False
        return True

    wait_for(gone, timeout=180, interval=1, what=f"the process of {task_id} ended")


def test_a_task_failed_by_hand_cleared_and_then_failing_by_itself_is_resumable(stack, kill_dags):
    dag = "resume_test_kill_cleared"
    mode = f"{dag}_mode"
    with stack.variables_from({mode: "wait"}):
        run_id = stack.trigger(dag)
        stack.fail_by_hand(dag, run_id, "flaky")
        assert stack.wait_for_run(dag, run_id) == "failed"
        wait_for_task_process_gone(stack, dag, run_id, "flaky")

        stack.set_variable(mode, "fail")
        with stack.client() as c:
            resp = c.post(
                f"/api/v2/dags/{dag}/clearTaskInstances",
                json={
                    "dry_run": False,
                    "task_ids": ["flaky"],
                    "dag_run_id": run_id,
                    "only_failed": True,
                    "include_downstream": True,
                },
            )
        assert resp.status_code == 200, resp.text
        wait_for_task(stack, dag, run_id, "flaky", "failed", try_number=2)
        assert stack.wait_for_run(dag, run_id) == "failed"

        body = verdict(stack, dag, run_id)
        assert body["resumable"] is True, body
        assert body["failure"]["message"] == "flaky fails by itself", body["failure"]
        stack.set_variable(mode, "ok")
        assert finished(stack, dag, resumed(stack, dag, run_id)) == "success"


def test_a_refused_request_to_fail_a_task_does_not_count_as_a_manual_kill(stack, kill_dags):
    dag = "resume_test_kill_denied"
    mode = f"{dag}_mode"
    with stack.variables_from({mode: "wait"}):
        run_id = stack.trigger(dag)
        wait_for_task(stack, dag, run_id, "flaky", "running")
        with stack.client("viewer") as viewer:
            denied = viewer.patch(
                f"/api/v2/dags/{dag}/dagRuns/{q(run_id)}/taskInstances/flaky", json={"new_state": "failed"}
            )
        assert denied.status_code == 403, denied.text
        stack.set_variable(mode, "fail")
        assert stack.wait_for_run(dag, run_id) == "failed"

        body = verdict(stack, dag, run_id)
        assert body["resumable"] is True, body
        assert body["failed_task_id"] == "flaky"
        stack.set_variable(mode, "ok")
        assert finished(stack, dag, resumed(stack, dag, run_id)) == "success"


# --- 6. per-task params -----------------------------------------------------------------------------

TASK_PARAMS_DAG = """
from airflow.sdk import DAG, Variable, task

with DAG("resume_test_task_params", schedule=None, params={"resume": True, "limit": 10}):

    @task
    def first(params=None):
        return params["limit"]

    @task(params={"limit": 5})
    def second(value, params=None):
        if Variable.get("resume_test_task_params_fail", default="") == "true":
            raise ValueError("second fails on purpose")
        return params["limit"]

    @task
    def third(value, params=None):
        return params["limit"]

    third(second(first()))
"""


# Release set: how task-level params reach a task differs by release.
@pytest.mark.release
def test_a_task_level_param_of_the_resume_point_does_not_leak_into_later_tasks(stack):
    dag = "resume_test_task_params"
    with stack.variables(resume_test_task_params_fail="true"):
        write_dag(stack, dag, TASK_PARAMS_DAG)
        root = stack.trigger(dag)
        assert stack.wait_for_run(dag, root) == "failed"
        assert xcom_value(stack, dag, root, "first") == 10

        stack.set_variable("resume_test_task_params_fail", "false")
        new_run = resumed(stack, dag, root)
        assert finished(stack, dag, new_run) == "success"
    assert xcom_value(stack, dag, new_run, "second") == 5
    assert xcom_value(stack, dag, new_run, "third") == 10


# --- 8. small defects -----------------------------------------------------------------------------------

INFINITE_DELAY_DAG = """
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

with DAG("__DAG_ID__", schedule=None, params={"resume": {"retries": 1, "retry_delay": float("inf")}}):
    EmptyOperator(task_id="only")
"""


def test_an_infinite_retry_delay_is_a_dag_import_error_naming_the_key(stack):
    dag = unique("resume_test_infinite_delay")
    path = stack.dags / f"{dag}.py"
    # Written in one step (a file beside the DAG folder, then renamed): never read half-written.
    staged = stack.home / f".{path.name}.new"
    staged.write_text(INFINITE_DELAY_DAG.replace("__DAG_ID__", dag))
    os.replace(staged, path)
    try:

        def import_error():
            with stack.client() as c:
                body = c.get("/api/v2/importErrors", params={"filename_pattern": path.name}).json()
            return next(
                (e for e in body["import_errors"] if str(e.get("filename", "")).endswith(path.name)), None
            )

        error = wait_for(import_error, timeout=180, interval=2, what=f"an import error for {path.name}")
        assert "retry_delay" in error["stack_trace"], error["stack_trace"]
        assert dag in error["stack_trace"], error["stack_trace"]
        with stack.client() as c:
            assert c.get(f"/api/v2/dags/{dag}").status_code == 404
    finally:
        path.unlink(missing_ok=True)


ALL_DONE_DAG = """
from airflow.sdk import DAG, Variable, task

with DAG("resume_test_all_done", schedule=None, params={"resume": True}):

    @task
    def a():
        return 1

    @task
    def b(value):
        if Variable.get("resume_test_all_done_b", default="") == "fail":
            raise ValueError("b fails on purpose")
        return value + 1

    @task(trigger_rule="all_done")
    def c():
        return "cleaned up"

    @task
    def d(value):
        if Variable.get("resume_test_all_done_d", default="") == "fail":
            raise ValueError("d fails on purpose")
        return value

    cleaned = c()
    b(a()) >> cleaned
    d(cleaned)
"""


def test_a_failure_added_after_a_later_task_linked_to_the_state_keeps_the_link_valid(stack):
    """
    ``c`` (all_done) runs after ``b`` failed and links to ``b``'s state file; ``b``'s failure was added
    to that file. ``b`` is then marked success by hand (Airflow reruns ``d``, which fails again), so the
    resume point is ``d`` and its chain runs through ``c`` to ``b``'s file.
    """
    dag = "resume_test_all_done"
    with stack.variables(resume_test_all_done_b="fail", resume_test_all_done_d="fail"):
        write_dag(stack, dag, ALL_DONE_DAG)
        root = stack.trigger(dag)
        assert stack.wait_for_run(dag, root) == "failed"
        tis = stack.task_instances(dag, root)
        assert {t: tis[t]["state"] for t in "abcd"} == {
            "a": "success",
            "b": "failed",
            "c": "success",
            "d": "failed",
        }

        with stack.client() as c:
            resp = c.patch(
                f"/api/v2/dags/{dag}/dagRuns/{q(root)}/taskInstances/b", json={"new_state": "success"}
            )
        assert resp.status_code == 200, resp.text
        wait_for_task(stack, dag, root, "d", "failed", try_number=2)
        assert stack.wait_for_run(dag, root) == "failed"

        body = verdict(stack, dag, root)
        assert "changed after it was referenced" not in json.dumps(body), body["reason"]
        assert body["resumable"] is True, body
        assert body["resume_task_id"] == "d"
        assert [s["action"] for s in body["plan"]["tasks"]] == ["restored", "restored", "restored", "run"]

        stack.set_variable("resume_test_all_done_d", "ok")
        new_run = resumed(stack, dag, root)
        assert finished(stack, dag, new_run) == "success"
    tis = stack.task_instances(dag, new_run)
    assert [tis[t]["try_number"] for t in "abcd"] == [0, 0, 0, 1]

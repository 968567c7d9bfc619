"""Resume through the REST API against a real api-server, scheduler and dag-processor."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.e2e.runs import resume_runs
from tools.airflow_stack import wait_for

pytestmark = pytest.mark.e2e

API = "/resume/api/v1"


def resume_url(dag_id: str, run_id: str) -> str:
    return f"{API}/dags/{dag_id}/dagRuns/{run_id}"


def read_state(stack, dag_id: str, run_id: str, task_id: str, attempt: int = 1) -> tuple[dict, list[str]]:
    """The state file of an attempt and the names beside it, wherever the stack keeps logs."""
    relative = f"dag_id={dag_id}/run_id={run_id}/task_id={task_id}"
    if stack.s3 is not None:
        listing = stack.s3.list_objects_v2(Bucket="airflow-logs", Prefix=f"logs/{relative}/")
        names = [o["Key"].rsplit("/", 1)[-1] for o in listing.get("Contents", [])]
        body = stack.s3.get_object(
            Bucket="airflow-logs", Key=f"logs/{relative}/attempt={attempt}.resume.json"
        )
        return json.loads(body["Body"].read()), names
    folder = stack.logs / relative
    return json.loads((folder / f"attempt={attempt}.resume.json").read_text()), sorted(
        p.name for p in folder.iterdir()
    )


# Release set: the main path (SQLite, local state files); the capture's XCom-push hook differs by release.
@pytest.mark.release
def test_fail_fix_resume_succeed(stack):
    with stack.variables(resume_example_fail="true"):
        run_id = stack.trigger("resume_example_etl")
        assert stack.wait_for_run("resume_example_etl", run_id) == "failed"

        # The state sits beside the failed attempt's log, holding the upstream XComs and the failure.
        def state_and_log():
            state, names = read_state(stack, "resume_example_etl", run_id, "transform")
            return ("attempt=1.log" in names) and (state, names)

        state, names = wait_for(
            lambda: _quiet(state_and_log), timeout=60, what="state file and uploaded log side by side"
        )
        assert "attempt=1.resume.json" in names
        assert state["failure"]["exception_type"] == "RuntimeError"
        assert {x["key"] for x in state["inputs"]["xcoms"]} == {"return_value", "row_count"}

        with stack.client() as c:
            verdict = c.get(resume_url("resume_example_etl", run_id)).json()
            assert verdict["resumable"] is True, verdict["reason"]
            assert verdict["failed_task_id"] == "transform"
            assert verdict["plan"]["resume_task_id"] == "transform"
            assert [s["action"] for s in verdict["plan"]["tasks"]] == ["restored", "run", "run"]
            assert verdict["plan"]["tasks"][0]["source"].endswith("task_id=transform/attempt=1.resume.json")

            stack.set_variable("resume_example_fail", "false")
            resp = c.post(resume_url("resume_example_etl", run_id) + "/resume")
            assert resp.status_code == 201, resp.text
            new_run = resp.json()["dag_run_id"]
            assert resp.json()["resume_task_id"] == "transform"

        assert stack.wait_for_run("resume_example_etl", new_run) == "success"
    tis = stack.task_instances("resume_example_etl", new_run)
    assert tis["extract"]["try_number"] == 0 and tis["extract"]["state"] == "success"
    assert tis["transform"]["try_number"] == 1
    with stack.client() as c:
        run = c.get(f"/api/v2/dags/resume_example_etl/dagRuns/{new_run}").json()
        assert run["note"] == f"Resumed from {run_id} at transform"
        assert run["triggering_user_name"] == "admin"
        audit = c.get(
            "/api/v2/eventLogs",
            params={"event": "resume_dag_run", "dag_id": "resume_example_etl", "run_id": run_id},
        ).json()
        assert any(e["run_id"] == run_id and e["owner"] == "admin" for e in audit["event_logs"])
        # A second request returns the same run.
        again = c.post(resume_url("resume_example_etl", run_id) + "/resume")
        assert again.status_code == 200 and again.json()["dag_run_id"] == new_run


def _quiet(fn):
    try:
        return fn()
    except Exception:
        return False


def test_a_task_marked_failed_by_hand_is_refused(stack):
    run_id = stack.trigger("resume_test_sleepy")
    stack.fail_by_hand("resume_test_sleepy", run_id, "sleepy")
    assert stack.wait_for_run("resume_test_sleepy", run_id) == "failed"
    with stack.client() as c:
        verdict = c.get(resume_url("resume_test_sleepy", run_id)).json()
        assert verdict["resumable"] is False
        assert verdict["reason_code"] == "manual_kill"
        assert "set to failed" in verdict["reason"]
        resp = c.post(resume_url("resume_test_sleepy", run_id) + "/resume")
        assert resp.status_code == 409
        assert "never resumed" in resp.json()["detail"]


# Release set: the verdict reads the DAG version the run ran, an older one than the DAG's latest.
@pytest.mark.release
def test_structure_change_is_refused_with_the_change_named(stack):
    def write(source: str, new_version: bool = True) -> None:
        stack.write_dag_file(
            "resume_test_mutable", source, dag_ids=("resume_test_mutable",), new_version=new_version
        )

    write(MUTABLE_DAG.format(steps='["one", "two", "three"]'))
    run_id = stack.trigger("resume_test_mutable")
    assert stack.wait_for_run("resume_test_mutable", run_id) == "failed"

    write(MUTABLE_DAG.format(steps='["one", "three", "two"]'))
    with stack.client() as c:
        verdict = c.get(resume_url("resume_test_mutable", run_id)).json()
        assert verdict["reason_code"] == "structure_changed", verdict
        assert "tasks were reordered: was one >> two >> three, now one >> three >> two" in verdict["reason"]
        resp = c.post(resume_url("resume_test_mutable", run_id) + "/resume")
        assert resp.status_code == 409

    # Changing only a task's code is allowed: that is how a bug gets fixed before resuming. The DAG's
    # serialized form stays the same, so Airflow keeps its version.
    write(
        MUTABLE_DAG.format(steps='["one", "two", "three"]').replace("raise ValueError", "print"),
        new_version=False,
    )
    with stack.client() as c:
        resp = c.post(resume_url("resume_test_mutable", run_id) + "/resume")
        assert resp.status_code == 201, resp.text
    assert stack.wait_for_run("resume_test_mutable", resp.json()["dag_run_id"]) == "success"


MUTABLE_DAG = """
from airflow.sdk import DAG, chain, task

with DAG("resume_test_mutable", schedule=None, params={{"resume": True}}):
    def make(name):
        @task(task_id=name)
        def step():
            if name == "two":
                raise ValueError("two fails")
            return name
        return step()
    chain(*[make(n) for n in {steps}])
"""


def test_concurrent_resume_requests_create_one_run(stack):
    with stack.variables(resume_example_fail="true"):
        run_id = stack.trigger("resume_example_etl")
        assert stack.wait_for_run("resume_example_etl", run_id) == "failed"
    token = stack.token()

    def post(_):
        return httpx.post(
            stack.url + resume_url("resume_example_etl", run_id) + "/resume",
            headers={"Authorization": f"Bearer {token}"},
            timeout=120,
        )

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(post, range(20)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * 19 + [201], [r.text for r in responses if r.status_code not in (200, 201)]
    assert len({r.json()["dag_run_id"] for r in responses}) == 1
    assert len(resume_runs(stack, "resume_example_etl", run_id)) == 1


def test_authentication_and_authorization(stack):
    run_id = stack.trigger("resume_test_sleepy")
    url = resume_url("resume_test_sleepy", run_id)
    with stack.client(user=None) as anonymous:
        assert anonymous.get(url).status_code == 401
        assert anonymous.post(url + "/resume").status_code == 401
    with stack.client(user="viewer") as viewer:
        assert viewer.get(url).status_code == 200
        assert viewer.post(url + "/resume").status_code == 403
    with stack.client() as admin:
        assert admin.get(f"{API}/dags/resume_test_sleepy/dagRuns/no_such_run").status_code == 404
        assert admin.get(f"{API}/dags/no_such_dag/dagRuns/{run_id}").status_code in (403, 404)
        assert admin.post(url + "/resume", json={"from_task_id": 7}).status_code == 422
        assert admin.post(url + "/resume", json={"unknown": "x"}).status_code == 422
        # The UI's session cookie alone is not enough to resume: a CSRF token must come with it.
        cookie_client = httpx.Client(base_url=stack.url, cookies={"_token": stack.token()}, timeout=30)
        with cookie_client:
            resp = cookie_client.post(url + "/resume")
            assert resp.status_code == 403 and "CSRF" in resp.json()["detail"]
        admin.patch(f"/api/v2/dags/resume_test_sleepy/dagRuns/{run_id}", json={"state": "failed"})


def test_a_task_process_killed_by_the_system_is_resumable(stack):
    """An OOM kill (SIGKILL of the task process) is not a person's decision: the state was written first."""
    import os
    import signal

    import psutil

    run_id = stack.trigger("resume_test_sleepy")
    wait_for(
        lambda: (
            stack.task_instances("resume_test_sleepy", run_id).get("sleepy", {}).get("state") == "running"
        ),
        timeout=120,
        what="sleepy running",
    )

    ti_id = stack.task_instances("resume_test_sleepy", run_id)["sleepy"]["id"]

    def task_process():
        # The task runner names its process "airflow worker -- <task instance id>".
        for proc in psutil.process_iter(["pid", "cmdline"]):
            if " ".join(proc.info["cmdline"] or []).strip() == f"airflow worker -- {ti_id}":
                return proc.info["pid"]
        return None

    pid = wait_for(task_process, timeout=60, what="the task runner process of sleepy")
    # Killed once it runs its code, i.e. after its state file was written.
    wait_for(
        lambda: _quiet(lambda: read_state(stack, "resume_test_sleepy", run_id, "sleepy")),
        timeout=60,
        what="the state file of sleepy",
    )
    os.kill(pid, signal.SIGKILL)
    assert stack.wait_for_run("resume_test_sleepy", run_id) == "failed"
    with stack.client() as c:
        verdict = c.get(resume_url("resume_test_sleepy", run_id)).json()
        assert verdict["resumable"] is True, verdict["reason"]
        assert verdict["failed_task_id"] == "sleepy"
        assert verdict["failure"]["cause"] == "infrastructure"  # the task never got to record an error
        assert verdict["failure"]["exception_type"] is None
        resp = c.post(resume_url("resume_test_sleepy", run_id) + "/resume")
        assert resp.status_code == 201, resp.text
        new_run = resp.json()["dag_run_id"]
    wait_for(
        lambda: (
            stack.task_instances("resume_test_sleepy", new_run).get("sleepy", {}).get("state") == "running"
        ),
        timeout=120,
        what="sleepy running again in the resumed run",
    )
    assert stack.task_instances("resume_test_sleepy", new_run)["before"]["try_number"] == 0
    with stack.client() as c:  # do not leave a 10-minute task behind
        c.patch(f"/api/v2/dags/resume_test_sleepy/dagRuns/{new_run}", json={"state": "failed"})

"""
A durable operator whose task process is killed while its external job runs: the resumed run carries
the job id (Airflow 3.3 task state store) and the resumed task reattaches to the job instead of
submitting a second one. Real api-server, scheduler and dag-processor.
"""

from __future__ import annotations

import json
import os
import signal

import httpx
import psutil
import pytest

from tests.e2e.runs import q, xcom_value
from tools.airflow_stack import wait_for

pytestmark = pytest.mark.e2e

DAG_ID = "resume_test_durable"
TASK = "submit_and_wait"
API = "/resume/api/v1"


def jobs(path) -> list[dict]:
    return json.loads(path.read_text())["jobs"] if path.exists() else []


def set_status(path, job_id: str, status: str) -> None:
    table = [{**j, "status": status} if j["id"] == job_id else j for j in jobs(path)]
    scratch = path.with_name("jobs.tmp")
    scratch.write_text(json.dumps({"jobs": table}))
    os.replace(scratch, path)  # at once: the task may be reading it


def stored_keys(stack, run_id: str) -> dict[str, object]:
    with stack.client() as c:
        resp = c.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{q(run_id)}/taskInstances/{TASK}/state-store")
    if resp.status_code != 200:
        return {}
    return {e["key"]: e["value"] for e in resp.json()["task_state_store"]}


def task_process(stack, ti_id: str) -> psutil.Process | None:
    """The task's own process (titled ``airflow worker -- <ti id>``), a descendant of the scheduler."""
    scheduler = psutil.Process(stack.processes["scheduler"].pid)
    for proc in scheduler.children(recursive=True):
        try:
            if " ".join(proc.cmdline()).strip() == f"airflow worker -- {ti_id}":
                return proc
        except psutil.NoSuchProcess:
            continue
    return None


def running(stack, run_id: str) -> dict | None:
    ti = stack.task_instances(DAG_ID, run_id).get(TASK, {})
    return ti if ti.get("state") == "running" else None


def has_task_state_store() -> bool:
    """Whether the installed Airflow (3.3 and later) has a task state store to carry."""
    from airflow_resume_provider.compat import task_state_store_model

    return task_state_store_model() is not None


# Release set: the task state store exists from 3.3 on; on 3.2 the resumed task submits a second job.
@pytest.mark.release
def test_a_killed_task_reattaches_to_its_job_after_the_resume(stack, tmp_path):
    carried = has_task_state_store()
    table = tmp_path / "jobs.json"
    with stack.variables(resume_test_job_table=str(table), resume_test_durable_lose_worker="false"):
        run_id = stack.trigger(DAG_ID)

        # The job is submitted and its id stored before polling starts; then the task process dies.
        ti = wait_for(lambda: running(stack, run_id), timeout=120, what=f"{TASK} running")
        [job] = wait_for(lambda: jobs(table), timeout=60, what="the job submitted")
        if carried:
            stored = wait_for(lambda: stored_keys(stack, run_id), timeout=60, what="the job id stored")
            assert stored == {"fake_job_id": job["id"]}
        assert job["status"] == "running"
        proc = wait_for(lambda: task_process(stack, ti["id"]), timeout=30, what="the task process")
        proc.send_signal(signal.SIGKILL)
        assert stack.wait_for_run(DAG_ID, run_id) == "failed"
        assert stack.task_instances(DAG_ID, run_id)[TASK]["state"] == "failed"

        with stack.client() as c:
            verdict = c.get(f"{API}/dags/{DAG_ID}/dagRuns/{q(run_id)}").json()
        assert verdict["resumable"] is True, verdict["reason"]
        steps = {s["task_id"]: s for s in verdict["plan"]["tasks"]}
        expected = [{"key": "fake_job_id", "value": job["id"], "map_index": -1}] if carried else []
        assert steps[TASK]["carries"] == expected
        assert steps["prepare"]["carries"] == [] and steps["report"]["carries"] == []

        page = httpx.get(
            f"{stack.url}/resume/ui/dags/{DAG_ID}/dagRuns/{q(run_id)}",
            cookies={"_token": stack.token()},
            timeout=60,
        )
        assert page.status_code == 200
        shown = f'reattaches to <code class="mono">fake_job_id={job["id"]}</code>'
        assert (shown in page.text) is carried

        with stack.client() as c:
            resp = c.post(f"{API}/dags/{DAG_ID}/dagRuns/{q(run_id)}/resume")
        assert resp.status_code == 201, resp.text
        new_run = resp.json()["dag_run_id"]
        wait_for(lambda: running(stack, new_run), timeout=120, what=f"resumed {TASK} running")

        if not carried:  # Airflow < 3.3: nothing to reattach to, the resumed task submits a second job
            second = wait_for(lambda: jobs(table)[1:], timeout=60, what="a second job")[0]
            set_status(table, second["id"], "succeeded")
            assert stack.wait_for_run(DAG_ID, new_run) == "success"
            assert xcom_value(stack, DAG_ID, new_run, TASK) == {"job_id": second["id"], "rows": 42}
            return

        # The resumed task polls the job that still runs: no second job; it ends when the job does.
        assert stored_keys(stack, new_run) == {"fake_job_id": job["id"]}
        assert [j["id"] for j in jobs(table)] == [job["id"]]
        set_status(table, job["id"], "succeeded")
        assert stack.wait_for_run(DAG_ID, new_run) == "success"

        assert [j["id"] for j in jobs(table)] == [job["id"]]
        assert xcom_value(stack, DAG_ID, new_run, TASK) == {"job_id": job["id"], "rows": 42}
        assert stack.task_instances(DAG_ID, new_run)[TASK]["try_number"] == 1

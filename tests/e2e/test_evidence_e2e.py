"""
Evidence of a manual kill that nobody can plant, on a real api-server, scheduler and dag-processor:

- a read-only user's refused "set to failed" (Airflow writes the audit row before it answers 403)
  never turns a crashed task into ``manual_kill``, whenever it is sent;
- an operator's "set to failed" is a manual kill, also when the API server's kill marker is lost
  (Airflow's audit log then proves it: Airflow records no failure of the task's own);
- a kill marker someone planted in the storage never blocks a resume; the verdict warns, naming the
  file relative to the state folder;
- a marker of an earlier try (set to failed before the task ever ran, then cleared) never counts
  for the try that then failed by itself.
"""

from __future__ import annotations

import os
import signal

import pytest

from tests.e2e.runs import q, verdict
from tools.airflow_stack import wait_for

pytestmark = pytest.mark.e2e

DAG_SOURCE = """
import time

from airflow.sdk import DAG, Variable, task


def make(dag_id):
    def hold(name):
        deadline = time.monotonic() + 600
        while Variable.get(dag_id + "_" + name, default="go") == "wait" and time.monotonic() < deadline:
            time.sleep(1)

    with DAG(dag_id, schedule=None, params={"resume": True}) as dag:

        @task
        def gate():
            hold("gate")
            return "ready"

        @task
        def worker(value):
            hold("mode")
            if Variable.get(dag_id + "_mode", default="ok") == "fail":
                raise RuntimeError("worker fails by itself")
            return value

        @task
        def after(value):
            return value

        after(worker(gate()))
    return dag


for name in ("viewer", "operator", "planted", "stale"):
    make("resume_test_evidence_" + name)
"""


@pytest.fixture(scope="module")
def evidence_dags(stack):
    names = ("viewer", "operator", "planted", "stale")
    stack.write_dag_file(
        "resume_test_evidence", DAG_SOURCE, dag_ids=tuple(f"resume_test_evidence_{n}" for n in names)
    )


def relative(dag_id: str, run_id: str, name: str) -> str:
    return f"dag_id={dag_id}/run_id={run_id}/task_id=worker/{name}"


def stored(stack, rel: str) -> bytes | None:
    """A file of the state folder (local logs or S3), or None."""
    if stack.s3 is not None:
        try:
            return stack.s3.get_object(Bucket="airflow-logs", Key=f"logs/{rel}")["Body"].read()
        except stack.s3.exceptions.NoSuchKey:
            return None
    path = stack.logs / rel
    return path.read_bytes() if path.is_file() else None


def store(stack, rel: str, data: bytes | None) -> None:
    """Write (or with None delete) a file of the state folder, as someone with access to the storage."""
    if stack.s3 is not None:
        if data is None:
            stack.s3.delete_object(Bucket="airflow-logs", Key=f"logs/{rel}")
        else:
            stack.s3.put_object(Bucket="airflow-logs", Key=f"logs/{rel}", Body=data)
        return
    path = stack.logs / rel
    if data is None:
        path.unlink()
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def wait_for_worker(stack, dag_id: str, run_id: str, state: str, try_number: int | None = None) -> dict:
    def reached():
        ti = stack.task_instances(dag_id, run_id).get("worker", {})
        return ti.get("state") == state and (try_number is None or ti.get("try_number") == try_number) and ti

    return wait_for(reached, timeout=240, interval=1, what=f"worker of {run_id} {state}")


def set_worker_failed(stack, user: str, dag_id: str, run_id: str) -> int:
    with stack.client(user) as c:
        return c.patch(
            f"/api/v2/dags/{dag_id}/dagRuns/{q(run_id)}/taskInstances/worker", json={"new_state": "failed"}
        ).status_code


def test_a_viewer_cannot_turn_a_killed_task_into_a_manual_kill(stack, evidence_dags):
    import psutil

    dag = "resume_test_evidence_viewer"
    with stack.variables_from({f"{dag}_mode": "wait"}):
        run_id = stack.trigger(dag)
        ti = wait_for_worker(stack, dag, run_id, "running")
        wait_for(
            lambda: stored(stack, relative(dag, run_id, "attempt=1.resume.json")),
            timeout=60,
            what="the worker's state file",
        )
        # Refused while the task runs, and again after it was killed: Airflow writes each audit row.
        assert set_worker_failed(stack, "viewer", dag, run_id) == 403

        def task_process():
            for proc in psutil.process_iter(["pid", "cmdline"]):
                if " ".join(proc.info["cmdline"] or []).strip() == f"airflow worker -- {ti['id']}":
                    return proc.info["pid"]
            return None

        os.kill(wait_for(task_process, timeout=60, what="the worker's process"), signal.SIGKILL)
        assert stack.wait_for_run(dag, run_id) == "failed"
        assert set_worker_failed(stack, "viewer", dag, run_id) == 403
        with stack.client("viewer") as c:
            denied = c.patch(f"/api/v2/dags/{dag}/dagRuns/{q(run_id)}", json={"state": "failed"})
        assert denied.status_code == 403, denied.text
        with stack.client() as c:
            rows = c.get(
                "/api/v2/eventLogs", params={"dag_id": dag, "run_id": run_id, "owner": "viewer"}
            ).json()
        assert rows["total_entries"] >= 2, rows  # the refused requests are in the audit log

        body = verdict(stack, dag, run_id)
        assert body["resumable"] is True, body
        assert body["failed_task_id"] == "worker"


def test_an_operators_kill_counts_also_when_the_marker_is_lost(stack, evidence_dags):
    dag = "resume_test_evidence_operator"
    with stack.variables_from({f"{dag}_mode": "wait"}):
        run_id = stack.trigger(dag)
        wait_for_worker(stack, dag, run_id, "running")
        assert set_worker_failed(stack, "operator", dag, run_id) == 200
        assert stack.wait_for_run(dag, run_id) == "failed"
        marker = relative(dag, run_id, "attempt=1.resume-killed.json")
        wait_for(lambda: stored(stack, marker), timeout=60, what="the API server's kill marker")
        assert "kill marker" not in str(verdict(stack, dag, run_id)["warnings"]).lower()
        store(stack, marker, None)

        body = verdict(stack, dag, run_id)
        assert body["reason_code"] == "manual_kill", body
        assert "task 'worker' was set to failed by operator (patch_task_instance" in body["reason"]


def test_a_planted_kill_marker_never_blocks_a_resume(stack, evidence_dags):
    dag = "resume_test_evidence_planted"
    with stack.variables_from({f"{dag}_mode": "fail"}):
        run_id = stack.trigger(dag)
        assert stack.wait_for_run(dag, run_id) == "failed"
        marker = relative(dag, run_id, "attempt=1.resume-killed.json")
        for planted in (b"garbage", b'{"message": "stopped by an admin"}'):
            store(stack, marker, planted)
            body = verdict(stack, dag, run_id)
            assert body["resumable"] is True, body
            warnings = [w for w in body["warnings"] if marker in w]
            assert len(warnings) == 1 and "is ignored" in warnings[0], body["warnings"]
            assert str(stack.logs) not in warnings[0] and "s3://" not in warnings[0]


def test_a_marker_of_a_try_that_never_ran_does_not_count_for_the_next(stack, evidence_dags):
    dag = "resume_test_evidence_stale"
    with stack.variables_from({f"{dag}_gate": "wait", f"{dag}_mode": "fail"}):
        run_id = stack.trigger(dag)
        wait_for(
            lambda: stack.task_instances(dag, run_id).get("gate", {}).get("state") == "running",
            timeout=120,
            what="gate running",
        )
        # Set to failed by hand before it ever ran (try 0): the API server writes its marker.
        assert stack.task_instances(dag, run_id)["worker"]["try_number"] == 0
        assert set_worker_failed(stack, "operator", dag, run_id) == 200
        stack.set_variable(f"{dag}_gate", "go")
        assert stack.wait_for_run(dag, run_id) == "failed"
        wait_for(
            lambda: stored(stack, relative(dag, run_id, "attempt=1.resume-killed.json")),
            timeout=60,
            what="the API server's kill marker",
        )
        with stack.client() as c:
            resp = c.post(
                f"/api/v2/dags/{dag}/clearTaskInstances",
                json={
                    "dry_run": False,
                    "task_ids": ["worker"],
                    "dag_run_id": run_id,
                    "only_failed": True,
                    "include_downstream": True,
                },
            )
        assert resp.status_code == 200, resp.text
        wait_for_worker(stack, dag, run_id, "failed", try_number=1)
        assert stack.wait_for_run(dag, run_id) == "failed"

        body = verdict(stack, dag, run_id)
        assert body["resumable"] is True, body
        assert body["failure"]["message"] == "worker fails by itself", body["failure"]

"""
Retention on a running Airflow: an old failed run is refused as expired through the REST API, and
``airflow resume cleanup`` deletes its state while Airflow runs, from wherever the stack keeps state
(S3 on moto_server when the stack logs there, else the local log folder).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tools.airflow_stack import wait_for

pytestmark = pytest.mark.e2e

DAG = "resume_example_etl"
BUCKET = "airflow-logs"


def set_end_back(stack, run_id: str, days: int) -> None:
    """Set the run's end ``days`` back in the stack's metadata DB, with Airflow's own DB settings."""
    code = (
        "from datetime import datetime, timedelta, timezone\n"
        "from sqlalchemy import update\n"
        "from airflow.models.dagrun import DagRun\n"
        "from airflow.utils.session import create_session\n"
        "t = DagRun.__table__\n"
        "with create_session() as s:\n"
        f"    s.execute(update(t).where(t.c.dag_id == {DAG!r}, t.c.run_id == {run_id!r})"
        f".values(end_date=datetime.now(timezone.utc) - timedelta(days={days})))\n"
    )
    subprocess.run(
        [sys.executable, "-c", code], env=stack.env(), check=True, capture_output=True, timeout=120
    )


def run_files(stack, run_id: str) -> dict[str, int]:
    """Every file of the run (logs and state), relative to the run's folder, with its size."""
    relative = f"dag_id={DAG}/run_id={run_id}"
    if stack.s3 is not None:
        listing = stack.s3.list_objects_v2(Bucket=BUCKET, Prefix=f"logs/{relative}/")
        return {o["Key"][len(f"logs/{relative}/") :]: o["Size"] for o in listing.get("Contents", [])}
    folder = stack.logs / relative
    return {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*") if p.is_file()}


def state_only(files: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in files.items() if k.endswith((".resume.json", ".resume-killed.json"))}


def test_an_old_run_is_refused_as_expired_and_cleanup_deletes_its_state_only(stack):
    with stack.variables(resume_example_fail="true"):
        old = stack.trigger(DAG)
        recent = stack.trigger(DAG)
        assert stack.wait_for_run(DAG, old) == "failed"
        assert stack.wait_for_run(DAG, recent) == "failed"
    # Both runs' state and uploaded logs are in place (logs reach S3 when a task ends).
    for run_id in (old, recent):
        wait_for(
            lambda run_id=run_id: (
                {
                    "task_id=extract/attempt=1.log",
                    "task_id=transform/attempt=1.resume.json",
                    "task_id=transform/attempt=1.log",
                }
                <= set(run_files(stack, run_id))
            ),
            timeout=60,
            what=f"state and logs of {run_id}",
        )
    before = run_files(stack, old)
    recent_before = run_files(stack, recent)
    set_end_back(stack, old, days=40)

    with stack.client() as c:
        verdict = c.get(f"/resume/api/v1/dags/{DAG}/dagRuns/{old}").json()
        assert verdict["reason_code"] == "state_expired", verdict
        assert "its state files may have been deleted" in verdict["reason"]
        resp = c.post(f"/resume/api/v1/dags/{DAG}/dagRuns/{old}/resume")
        assert resp.status_code == 409
        assert resp.json()["reason_code"] == "state_expired"

    dry = stack.cli(
        "resume", "cleanup", "--older-than-days", "35", "--dag-id", DAG, "--dry-run", "-o", "json"
    )
    body = json.loads(dry.stdout)
    assert [r["run_id"] for r in body["runs"]] == [old]
    assert (body["files"], body["bytes"]) == (len(state_only(before)), sum(state_only(before).values()))
    assert run_files(stack, old) == before

    done = stack.cli("resume", "cleanup", "--older-than-days", "35", "--dag-id", DAG, "-y")
    assert f"Deleted {len(state_only(before))} state files" in done.stdout
    after = run_files(stack, old)
    assert state_only(after) == {}
    assert after == {k: v for k, v in before.items() if k not in state_only(before)}  # the logs stay
    # The recent run keeps everything (a log uploaded late may have joined it meanwhile).
    recent_after = run_files(stack, recent)
    assert state_only(recent_after) == state_only(recent_before)
    assert recent_before.items() <= recent_after.items()

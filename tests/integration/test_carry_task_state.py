"""
A resumed durable operator reattaches to its external job: the task state store (Airflow 3.3) of the
tasks that run again is carried into the resumed run, unless the DAG turns it off.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone

import pytest

from tests.conftest import airflow_cli
from tests.helpers import run_dag, run_existing_run, ti_states, xcom_value

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("airflow_db")]

DAG_ID = "resume_test_durable"
NO_CARRY = "resume_test_durable_no_carry"
TASK = "submit_and_wait"


@pytest.fixture
def job_table(tmp_path, monkeypatch):
    """The fake external system's job table, and a way to set a job's status."""
    path = tmp_path / "jobs.json"
    monkeypatch.setenv("AIRFLOW_VAR_RESUME_TEST_JOB_TABLE", str(path))

    class Table:
        def jobs(self) -> list[dict]:
            return json.loads(path.read_text())["jobs"] if path.exists() else []

        def set_status(self, job_id: str, status: str) -> None:
            jobs = self.jobs()
            for job in jobs:
                if job["id"] == job_id:
                    job["status"] = status
            scratch = path.with_name("jobs.tmp")
            scratch.write_text(json.dumps({"jobs": jobs}))
            os.replace(scratch, path)  # at once: the task may be reading it

    return Table()


def _session():
    from airflow.utils.session import create_session

    return create_session(scoped=False)


def assess(dag_id, run_id):
    from airflow_resume_provider.resume import assess as _assess

    with _session() as session:
        return _assess(session, dag_id, run_id)


def resume(dag_id, run_id):
    from airflow_resume_provider.resume import resume as _resume

    with _session() as session:
        return _resume(session, dag_id, run_id, user="tester")


def store_model():
    """Airflow's task state store table, or None before Airflow 3.3 (which has none)."""
    from airflow_resume_provider.compat import task_state_store_model

    return task_state_store_model()


def state_store(dag_id: str, run_id: str) -> dict[tuple[str, int, str], str]:
    """(task_id, map_index, key) -> stored JSON of one run's task state store (none before 3.3)."""
    from sqlalchemy import select

    TaskStateStoreModel = store_model()
    if TaskStateStoreModel is None:
        return {}
    with _session() as session:
        rows = session.execute(
            select(
                TaskStateStoreModel.task_id,
                TaskStateStoreModel.map_index,
                TaskStateStoreModel.key,
                TaskStateStoreModel.value,
            ).where(TaskStateStoreModel.dag_id == dag_id, TaskStateStoreModel.run_id == run_id)
        ).all()
    return {(t, m, k): v for t, m, k, v in rows}


def fail_while_polling(monkeypatch, dag_id: str):
    """A run whose durable task submitted its job, then lost its worker while the job runs on."""
    monkeypatch.setenv("AIRFLOW_VAR_RESUME_TEST_DURABLE_LOSE_WORKER", "true")
    dr = run_dag(dag_id)
    assert dr.state == "failed"
    assert ti_states(dag_id, dr.run_id)[TASK][0] == "failed"
    monkeypatch.setenv("AIRFLOW_VAR_RESUME_TEST_DURABLE_LOSE_WORKER", "false")
    return dr


def test_the_resumed_task_reattaches_to_the_submitted_job(monkeypatch, job_table):
    if store_model() is None:  # Airflow < 3.3: nothing to carry, the resumed task submits again
        resumed_task_submits_a_new_job(monkeypatch, job_table, DAG_ID)
        return
    dr = fail_while_polling(monkeypatch, DAG_ID)
    [job] = job_table.jobs()
    assert job["status"] == "running"
    assert state_store(DAG_ID, dr.run_id) == {(TASK, -1, "fake_job_id"): json.dumps(job["id"])}

    verdict = assess(DAG_ID, dr.run_id)
    assert verdict.resumable, verdict.reason
    steps = {s.task_id: s for s in verdict.plan.tasks}
    assert [c.model_dump() for c in steps[TASK].carries] == [
        {"key": "fake_job_id", "value": job["id"], "map_index": -1}
    ]
    assert steps["prepare"].carries == [] and steps["report"].carries == []
    assert verdict.to_dict()["plan"]["tasks"][1]["carries"] == [
        {"key": "fake_job_id", "value": job["id"], "map_index": -1}
    ]

    cli = airflow_cli("resume", "status", DAG_ID, dr.run_id, env={"COLUMNS": "250"}, check=False)
    assert cli.returncode == 0, cli.stderr
    lines = cli.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if "restored from" in line)
    assert "reattaches to" in lines[header]
    row = next(line for line in lines[header:] if line.startswith(TASK))
    assert f"fake_job_id={job['id']}" in row
    assert "Failure (cause: error): an error in the task's code (RuntimeError)." in cli.stdout

    job_table.set_status(job["id"], "succeeded")  # the job finished while no one watched
    outcome = resume(DAG_ID, dr.run_id)
    # Carried in the transaction that created the run, before any task of it ran.
    assert state_store(DAG_ID, outcome.dag_run_id) == {(TASK, -1, "fake_job_id"): json.dumps(job["id"])}
    assert run_existing_run(DAG_ID, outcome.dag_run_id) == "success"

    assert [j["id"] for j in job_table.jobs()] == [job["id"]]  # no second job submitted
    assert xcom_value(DAG_ID, outcome.dag_run_id, TASK) == {"job_id": job["id"], "rows": 42}
    assert xcom_value(DAG_ID, outcome.dag_run_id, "report") == {"reported": {"job_id": job["id"], "rows": 42}}
    assert state_store(DAG_ID, dr.run_id) == {(TASK, -1, "fake_job_id"): json.dumps(job["id"])}  # untouched


def test_with_carry_task_state_off_the_resumed_task_submits_a_new_job(monkeypatch, job_table):
    resumed_task_submits_a_new_job(monkeypatch, job_table, NO_CARRY)


def resumed_task_submits_a_new_job(monkeypatch, job_table, dag_id: str) -> None:
    """Nothing carried: the plan shows none, the resumed run starts empty and submits job-2."""
    dr = fail_while_polling(monkeypatch, dag_id)
    [first] = job_table.jobs()

    verdict = assess(dag_id, dr.run_id)
    assert verdict.resumable, verdict.reason
    assert all(step.carries == [] for step in verdict.plan.tasks)

    outcome = resume(dag_id, dr.run_id)
    assert state_store(dag_id, outcome.dag_run_id) == {}
    second_done = _finish_new_jobs_in_background(job_table, known={first["id"]})
    assert run_existing_run(dag_id, outcome.dag_run_id) == "success"
    second_done.join(timeout=30)

    jobs = job_table.jobs()
    assert [j["id"] for j in jobs] == [first["id"], "job-2"]
    assert xcom_value(dag_id, outcome.dag_run_id, TASK) == {"job_id": "job-2", "rows": 42}


def test_expired_entries_are_not_carried(monkeypatch, job_table):
    from sqlalchemy import update

    TaskStateStoreModel = store_model()
    if TaskStateStoreModel is None:  # Airflow < 3.3: no entries, nothing expires
        resumed_task_submits_a_new_job(monkeypatch, job_table, DAG_ID)
        return
    dr = fail_while_polling(monkeypatch, DAG_ID)
    with _session() as session:
        session.execute(
            update(TaskStateStoreModel)
            .where(TaskStateStoreModel.dag_id == DAG_ID, TaskStateStoreModel.run_id == dr.run_id)
            .values(expires_at=datetime.now(timezone.utc) - timedelta(minutes=1))
        )
    verdict = assess(DAG_ID, dr.run_id)
    assert all(step.carries == [] for step in verdict.plan.tasks)
    outcome = resume(DAG_ID, dr.run_id)
    assert state_store(DAG_ID, outcome.dag_run_id) == {}


def _finish_new_jobs_in_background(job_table, known: set[str]):
    """The external system: a job submitted from now on succeeds a moment later."""
    import threading
    import time

    def finish():
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            new = [j for j in job_table.jobs() if j["id"] not in known]
            if new:
                time.sleep(0.3)
                job_table.set_status(new[0]["id"], "succeeded")
                return
            time.sleep(0.1)

    thread = threading.Thread(target=finish, daemon=True)
    thread.start()
    return thread

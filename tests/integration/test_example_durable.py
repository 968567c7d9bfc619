"""The durable example DAG: it fails while its job runs on; the resumed run reattaches to that job."""

from __future__ import annotations

import json
import tempfile

import pytest

from tests.helpers import run_dag, run_existing_run, xcom_value

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("airflow_db")]

DAG_ID = "resume_example_durable"


def test_the_resumed_example_reattaches_to_its_job(monkeypatch, tmp_path):
    from airflow.utils.session import create_session

    from airflow_resume_provider.compat import task_state_store_model
    from airflow_resume_provider.resume import assess, resume

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the pretend system's job file
    monkeypatch.setenv("AIRFLOW_VAR_RESUME_EXAMPLE_JOB_SECONDS", "2")
    dr = run_dag(DAG_ID)
    assert dr.state == "failed"
    jobs = json.loads((tmp_path / "resume_example_jobs.json").read_text())
    assert list(jobs) == ["job-1"]

    monkeypatch.setenv("AIRFLOW_VAR_RESUME_EXAMPLE_LOSE_WORKER", "false")
    with create_session(scoped=False) as session:
        verdict = assess(session, DAG_ID, dr.run_id)
        carries = [c.model_dump() for c in verdict.plan.tasks[1].carries]
        outcome = resume(session, DAG_ID, dr.run_id, user="tester")
    assert run_existing_run(DAG_ID, outcome.dag_run_id) == "success"
    jobs = list(json.loads((tmp_path / "resume_example_jobs.json").read_text()))
    result = xcom_value(DAG_ID, outcome.dag_run_id, "report")
    if task_state_store_model() is None:  # Airflow < 3.3: nothing to carry, a second job is submitted
        assert (carries, jobs, result) == ([], ["job-1", "job-2"], {"job_id": "job-2"})
    else:
        assert carries == [{"key": "job_id", "value": "job-1", "map_index": -1}]
        assert (jobs, result) == (["job-1"], {"job_id": "job-1"})

"""
A failed task whose attempt recorded no error of its own (a crash, or a kill) is a manual kill when
Airflow's audit log has a request that set it to failed while it could be stopped, also a bulk request
that names the run only in its body; requests about other runs, or made long after the run ended, are not.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from tests.helpers import run_dag, state_file

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("airflow_db")]

DAG = "resume_example_etl"


def _session():
    from airflow.utils.session import create_session

    return create_session(scoped=False)


def assess(run_id: str):
    from airflow_resume_provider.resume import assess as _assess

    with _session() as session:
        return _assess(session, DAG, run_id)


def crashed_run():
    """A run failed at ``transform`` whose state file has no failure record, as after a worker crash."""
    from airflow_resume_provider import conf
    from airflow_resume_provider.state import storage

    dag_run = run_dag(DAG)
    assert dag_run.state == "failed"
    location = storage.location_for(
        dag_id=DAG, run_id=dag_run.run_id, task_id="transform", map_index=-1, try_number=1
    )
    loaded = storage.load(location)
    assert loaded is not None and loaded[0].failure is not None
    data, _ = storage.encode(loaded[0].model_copy(update={"failure": None}), conf.signing_key())
    state_file(DAG, dag_run.run_id, "transform").write_bytes(data)
    return dag_run


def bulk_failed_row(run_id: str, *, when, path_run: str = "~"):
    """The row Airflow's API writes for PATCH /dags/~/dagRuns/<path_run>/taskInstances (bulk update)."""
    from airflow.models.log import Log

    entity = {"dag_id": DAG, "dag_run_id": run_id, "task_id": "transform", "new_state": "failed"}
    row = Log(
        event="bulk_task_instances",
        owner="bob",
        dag_id="~",
        run_id=path_run,
        extra=json.dumps({"actions": [{"action": "update", "entities": [entity]}], "method": "PATCH"}),
    )
    row.dttm = when
    return row


def test_a_crashed_attempt_without_any_request_to_fail_it_is_resumable():
    dag_run = crashed_run()
    verdict = assess(dag_run.run_id)
    assert verdict.resumable, verdict.reason


def test_a_bulk_request_that_names_the_run_in_its_body_is_a_manual_kill():
    dag_run = crashed_run()
    with _session() as session:
        session.add(bulk_failed_row(dag_run.run_id, when=dag_run.end_date - timedelta(microseconds=1)))
        session.commit()
    verdict = assess(dag_run.run_id)
    assert verdict.reason_code == "manual_kill"
    assert "task 'transform' was set to failed by bob (bulk_task_instances" in verdict.reason


def test_bulk_requests_about_another_run_or_long_after_the_run_ended_do_not_count():
    dag_run = crashed_run()
    with _session() as session:
        session.add(bulk_failed_row("scheduled__2026-01-01T00:00:00+00:00", when=dag_run.end_date))
        session.add(bulk_failed_row(dag_run.run_id, when=dag_run.end_date + timedelta(hours=2)))
        session.commit()
    verdict = assess(dag_run.run_id)
    assert verdict.resumable, verdict.reason

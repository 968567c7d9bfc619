"""
Manual kills. Airflow's audit log counts only for a request Airflow carried out: the failed attempt ended
without Airflow recording a failure of its own (which a "set to failed" through the API never writes) and
the request was made while it ran, also a bulk request that names the run only in its body; requests
about other runs, made after the attempt ended, or refused while the attempt then failed on its own, do
not count. The API server's kill marker counts only when it verifies and names the failed attempt.
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


def set_to_failed_by_hand(dag_run) -> None:
    """What Airflow leaves when a person sets the attempt to failed: no row of the task's own failure."""
    from airflow.models.log import Log
    from sqlalchemy import delete

    with _session() as session:
        session.execute(
            delete(Log).where(
                Log.dag_id == DAG,
                Log.run_id == dag_run.run_id,
                Log.task_id == "transform",
                Log.event.in_(("failed", "fail task")),
            )
        )
        session.commit()


def while_it_ran(dag_run):
    """A moment while the failed attempt ran."""
    ti = dag_run.get_task_instance("transform")
    return ti.start_date + (ti.end_date - ti.start_date) / 2


def test_a_crashed_attempt_without_any_request_to_fail_it_is_resumable():
    dag_run = crashed_run()
    verdict = assess(dag_run.run_id)
    assert verdict.resumable, verdict.reason


def test_a_bulk_request_that_names_the_run_in_its_body_is_a_manual_kill():
    dag_run = crashed_run()
    set_to_failed_by_hand(dag_run)
    with _session() as session:
        session.add(bulk_failed_row(dag_run.run_id, when=while_it_ran(dag_run)))
        session.commit()
    verdict = assess(dag_run.run_id)
    assert verdict.reason_code == "manual_kill"
    assert "task 'transform' was set to failed by bob (bulk_task_instances" in verdict.reason


def test_bulk_requests_about_another_run_or_after_the_attempt_ended_do_not_count():
    dag_run = crashed_run()
    set_to_failed_by_hand(dag_run)
    ended = dag_run.get_task_instance("transform").end_date
    with _session() as session:
        session.add(bulk_failed_row("scheduled__2026-01-01T00:00:00+00:00", when=while_it_ran(dag_run)))
        session.add(bulk_failed_row(dag_run.run_id, when=ended + timedelta(milliseconds=1)))
        session.commit()
    verdict = assess(dag_run.run_id)
    assert verdict.resumable, verdict.reason


def test_a_refused_request_while_the_attempt_ran_does_not_count_when_it_then_failed_on_its_own():
    # A read-only user's PATCH leaves a row (Airflow writes it before the 403); the attempt then died
    # with no error of its own (SIGKILL, OOM): Airflow recorded that failure, so the row changed nothing.
    dag_run = crashed_run()
    with _session() as session:
        for event in ("patch_task_instance", "bulk_task_instances"):
            row = patch_failed_row(dag_run.run_id, event=event)
            row.dttm = while_it_ran(dag_run)
            session.add(row)
        session.commit()
    verdict = assess(dag_run.run_id)
    assert verdict.resumable, verdict.reason


def patch_failed_row(run_id: str, *, event: str = "patch_task_instance", owner: str = "viewer"):
    """The row Airflow's API writes for PATCH .../taskInstances/transform {"new_state": "failed"}."""
    from airflow.models.log import Log

    if event == "bulk_task_instances":
        return bulk_failed_row(run_id, when=None)
    return Log(
        event=event,
        owner=owner,
        dag_id=DAG,
        task_id="transform",
        run_id=run_id,
        extra=json.dumps({"new_state": "failed", "method": "PATCH"}),
    )


# --- the API server's kill marker -------------------------------------------------------------------


def marker_path(run_id: str):
    return state_file(DAG, run_id, "transform").with_name("attempt=1.resume-killed.json")


def write_marker(run_id: str, *, key: bytes, **identity):
    from airflow_resume_provider.manual_kill import encode_marker

    attempt = {"dag_id": DAG, "run_id": run_id, "task_id": "transform", "map_index": -1, "try_number": 1}
    data = encode_marker({**attempt, **identity}, "TaskInstance's state was manually set", "now", key)
    marker_path(run_id).write_bytes(data)


KEY = "integration-signing-key"


def test_a_signed_marker_of_the_failed_attempt_is_a_manual_kill(monkeypatch):
    monkeypatch.setenv("AIRFLOW__RESUME__SIGNING_KEY", KEY)
    from airflow_resume_provider.manual_kill import _write_marker

    dag_run = run_dag(DAG)
    attempt = {"dag_id": DAG, "run_id": dag_run.run_id, "task_id": "transform", "map_index": -1}
    _write_marker({**attempt, "try_number": 1}, "TaskInstance's state was manually set to `failed`.")
    assert json.loads(marker_path(dag_run.run_id).read_text())["integrity"]["algorithm"] == "hmac-sha256"
    verdict = assess(dag_run.run_id)
    assert verdict.reason_code == "manual_kill"
    assert "task 'transform' was set to failed by hand" in verdict.reason


@pytest.mark.parametrize(
    ("plant", "warning"),
    [
        (lambda run_id: write_marker(run_id, key=b""), "is not signed, but [resume] signing_key is set"),
        (lambda run_id: write_marker(run_id, key=b"another-key"), "failed its integrity check"),
        (lambda run_id: marker_path(run_id).write_text("garbage"), "does not hold a JSON object"),
        (
            lambda run_id: marker_path(run_id).write_text(
                '{"message": "stopped by an admin, do not resume"}'
            ),
            "has no integrity digest",
        ),
        (lambda run_id: marker_path(run_id).mkdir(), "IsADirectoryError: Is a directory"),
        (
            lambda run_id: write_marker(run_id, key=KEY.encode(), task_id="load"),
            "was written for another task attempt",
        ),
    ],
    ids=["unsigned", "other-key", "garbage", "forged-text", "directory", "other-task"],
)
def test_a_marker_that_does_not_verify_is_ignored_with_a_warning(monkeypatch, plant, warning):
    # Someone who can write the storage but has no key cannot block a resume.
    monkeypatch.setenv("AIRFLOW__RESUME__SIGNING_KEY", KEY)
    dag_run = run_dag(DAG)
    plant(dag_run.run_id)
    verdict = assess(dag_run.run_id)
    assert verdict.resumable, verdict.reason
    shown = f"dag_id={DAG}/run_id={dag_run.run_id}/task_id=transform/attempt=1.resume-killed.json"
    found = [w for w in verdict.warnings if shown in w]
    assert len(found) == 1 and warning in found[0], verdict.warnings
    assert "is ignored" in found[0]
    # Paths relative to the state folder; OS errors summarised: no server path anywhere.
    assert str(marker_path(dag_run.run_id).parents[4]) not in json.dumps(verdict.to_dict())


def test_a_marker_of_an_earlier_try_never_counts_for_a_later_one(monkeypatch):
    # Set to failed by hand before it ever ran (try 0), cleared, then failing by itself at try 1.
    monkeypatch.setenv("AIRFLOW__RESUME__SIGNING_KEY", KEY)
    dag_run = run_dag(DAG)
    write_marker(dag_run.run_id, key=KEY.encode(), try_number=0)
    verdict = assess(dag_run.run_id)
    assert verdict.resumable, verdict.reason
    assert not [w for w in verdict.warnings if "marker" in w.lower()], verdict.warnings


def test_without_a_key_a_marker_of_an_earlier_release_still_counts():
    dag_run = run_dag(DAG)
    attempt = {"dag_id": DAG, "run_id": dag_run.run_id, "task_id": "transform", "map_index": -1}
    marker_path(dag_run.run_id).write_text(
        json.dumps({**attempt, "try_number": 1, "message": "manually set"})
    )
    assert assess(dag_run.run_id).reason_code == "manual_kill"

"""Resuming failed runs on a real metadata DB: verdicts, the resumed run, same inputs, lineage."""

from __future__ import annotations

import pytest

from tests.helpers import (
    read_json,
    run_dag,
    run_existing_run,
    state_file,
    ti_states,
    unique_logical_date,
    xcom_value,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("airflow_db")]


def _session():
    from airflow.utils.session import create_session

    return create_session(scoped=False)


def assess(dag_id, run_id, *, full_rerun=False, **kwargs):
    from airflow_resume_provider.facts import gather_facts
    from airflow_resume_provider.resumability import decide
    from airflow_resume_provider.resume import assess as _assess
    from airflow_resume_provider.resume import load_dag_and_run

    with _session() as session:
        if full_rerun:
            return decide(gather_facts(session, *load_dag_and_run(session, dag_id, run_id), full_rerun=True))
        return _assess(session, dag_id, run_id, **kwargs)


def resume(dag_id, run_id, **kwargs):
    from airflow_resume_provider.resume import resume as _resume

    with _session() as session:
        return _resume(session, dag_id, run_id, user="tester", **kwargs)


def test_example_fails_then_resumes_at_the_failed_task(monkeypatch):
    dr = run_dag("resume_example_etl")
    assert dr.state == "failed"

    verdict = assess("resume_example_etl", dr.run_id)
    assert verdict.resumable, verdict.reason
    assert verdict.failed_task_id == "transform"
    assert verdict.failure["exception_type"] == "RuntimeError"
    assert [(s.task_id, s.action, s.resume_point) for s in verdict.plan.tasks] == [
        ("extract", "restored", False),
        ("transform", "run", True),
        ("load", "run", False),
    ]
    assert verdict.plan.tasks[0].source.endswith("task_id=transform/attempt=1.resume.json")
    assert verdict.plan.tasks[0].xcom_keys == ["return_value", "row_count"]

    monkeypatch.setenv("AIRFLOW_VAR_RESUME_EXAMPLE_FAIL", "false")  # the fix
    outcome = resume("resume_example_etl", dr.run_id)
    assert outcome.created
    assert outcome.dag_run_id.startswith(f"resume__{dr.run_id}__1__")

    assert run_existing_run("resume_example_etl", outcome.dag_run_id) == "success"
    states = ti_states("resume_example_etl", outcome.dag_run_id)
    assert states["extract"] == ("success", 0)  # restored, never executed
    assert states["transform"] == ("success", 1)
    assert xcom_value("resume_example_etl", outcome.dag_run_id, "transform") == {
        "ds": None,
        "rows": 5,
        "total": 150,
    }


def test_resumed_tasks_see_the_original_context_and_earlier_tasks_run_once(monkeypatch, ledger):
    import pendulum

    monkeypatch.setenv("AIRFLOW_VAR_RESUME_TEST_FAIL_AT", "fourth")
    logical_date = pendulum.datetime(2026, 2, 3, 4, 5, tz="UTC")
    dr = run_dag("resume_test_chain", logical_date=logical_date, run_conf={"batch_size": 10, "region": "us"})
    assert dr.state == "failed"
    assert ledger() == ["first", "second", "fourth"]

    monkeypatch.setenv("AIRFLOW_VAR_RESUME_TEST_FAIL_AT", "")
    outcome = resume("resume_test_chain", dr.run_id)
    assert run_existing_run("resume_test_chain", outcome.dag_run_id) == "success"
    assert ledger() == ["first", "second", "fourth", "fourth", "fifth"]

    result = xcom_value("resume_test_chain", outcome.dag_run_id, "fourth")
    assert result["ds"] == "2026-02-03"
    assert result["sum"] == 12
    assert result["batch"] == {"id": 7}
    assert result["stamp"].startswith("2026-02-03 2026-02-03T04:05:00+00:00")
    assert result["conf"] == {"batch_size": 10, "region": "us"}  # no bookkeeping visible
    assert result["params"]["region"] == "us"
    assert "__resume__" not in result["params"]

    # The resumed attempt's own state records the original inputs and the lineage.
    doc = read_json(state_file("resume_test_chain", outcome.dag_run_id, "fourth"))
    assert doc["inputs"]["logical_date"] == "2026-02-03T04:05:00+00:00"
    assert doc["inputs"]["conf"] == {"batch_size": 10, "region": "us"}
    assert doc["lineage"] == {
        "parent_run_id": dr.run_id,
        "root_run_id": dr.run_id,
        "resume_count": 1,
        "resumed_at_task_id": "fourth",
    }


def test_a_full_rerun_needs_no_state_files_only_the_runs_record(monkeypatch, ledger):
    import shutil

    import pendulum

    monkeypatch.setenv("AIRFLOW_VAR_RESUME_TEST_FAIL_AT", "fourth")
    logical_date = pendulum.datetime(2026, 3, 4, 5, 6, tz="UTC")
    dr = run_dag("resume_test_chain", logical_date=logical_date, run_conf={"batch_size": 10, "region": "us"})
    assert dr.state == "failed"
    shutil.rmtree(state_file("resume_test_chain", dr.run_id, "first").parent.parent)  # the run's folder
    assert assess("resume_test_chain", dr.run_id).reason_code == "state_missing"  # a resume needs it

    rerun = assess("resume_test_chain", dr.run_id, full_rerun=True)
    assert rerun.resumable, rerun.reason
    assert rerun.resume_task_id == "first"
    assert {step.action for step in rerun.plan.tasks} == {"run"}
    assert any("a full rerun does not need it" in warning for warning in rerun.warnings), rerun.warnings

    monkeypatch.setenv("AIRFLOW_VAR_RESUME_TEST_FAIL_AT", "")
    outcome = resume("resume_test_chain", dr.run_id, full_rerun=True)
    assert outcome.resume_task_id == "first"
    assert run_existing_run("resume_test_chain", outcome.dag_run_id) == "success"
    assert ledger() == ["first", "second", "fourth", "first", "second", "fourth", "fifth"]
    result = xcom_value("resume_test_chain", outcome.dag_run_id, "fourth")
    assert result["ds"] == "2026-03-04"  # the failed run's logical date, from its record in the DB
    assert result["stamp"].startswith("2026-03-04 2026-03-04T05:06:00+00:00")
    assert result["conf"] == {"batch_size": 10, "region": "us"}
    assert result["params"]["region"] == "us"


def test_resuming_twice_returns_the_same_run():
    dr = run_dag("resume_example_etl")
    first = resume("resume_example_etl", dr.run_id)
    second = resume("resume_example_etl", dr.run_id)
    assert first.created and not second.created
    assert second.dag_run_id == first.dag_run_id
    assert assess("resume_example_etl", dr.run_id).resumed_run_id == first.dag_run_id


def test_a_resumed_run_may_start_at_once():
    """The scheduler starts queued runs whose ``run_after <= now()`` in the database; on SQLite now()
    has whole seconds and compares as text, so a run_after in the current second would wait for the
    next one."""
    from airflow.models.dagrun import DagRun
    from sqlalchemy import func, select

    dr = run_dag("resume_example_etl")
    outcome = resume("resume_example_etl", dr.run_id)
    with _session() as session:
        startable = session.scalar(
            select(DagRun.run_after <= func.now()).where(
                DagRun.dag_id == "resume_example_etl", DagRun.run_id == outcome.dag_run_id
            )
        )
    assert startable


def test_concurrent_requests_create_exactly_one_run():
    from concurrent.futures import ThreadPoolExecutor

    from airflow.models.dagrun import DagRun
    from sqlalchemy import func, select

    dr = run_dag("resume_example_etl")
    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(lambda _: resume("resume_example_etl", dr.run_id), range(8)))
    assert sum(o.created for o in outcomes) == 1
    assert len({o.dag_run_id for o in outcomes}) == 1
    with _session() as session:
        count = session.scalar(
            select(func.count())
            .where(DagRun.dag_id == "resume_example_etl", DagRun.run_id.like("resume__%"))
            .where(DagRun.run_id.contains(dr.run_id))
        )
    assert count == 1


def test_resume_from_an_earlier_task_uses_its_state(monkeypatch, ledger):
    monkeypatch.setenv("AIRFLOW_VAR_RESUME_TEST_FAIL_AT", "fifth")
    dr = run_dag("resume_test_chain", logical_date=unique_logical_date())
    monkeypatch.setenv("AIRFLOW_VAR_RESUME_TEST_FAIL_AT", "")
    verdict = assess("resume_test_chain", dr.run_id, from_task_id="second")
    assert verdict.resumable, verdict.reason
    assert [s.action for s in verdict.plan.tasks] == ["restored", "run", "run", "run", "run"]
    outcome = resume("resume_test_chain", dr.run_id, from_task_id="second")
    assert run_existing_run("resume_test_chain", outcome.dag_run_id) == "success"
    assert ledger() == ["first", "second", "fourth", "fifth", "second", "fourth", "fifth"]
    assert ti_states("resume_test_chain", outcome.dag_run_id)["first"] == ("success", 0)


def test_a_resumed_run_that_fails_again_resumes_with_the_same_root(monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_RESUME_TEST_FAIL_AT", "second")
    dr = run_dag("resume_test_chain", logical_date=unique_logical_date())
    first = resume("resume_test_chain", dr.run_id)
    monkeypatch.setenv("AIRFLOW_VAR_RESUME_TEST_FAIL_AT", "fourth")
    assert run_existing_run("resume_test_chain", first.dag_run_id) == "failed"
    verdict = assess("resume_test_chain", first.dag_run_id)
    assert verdict.resumable, verdict.reason
    assert verdict.lineage["root_run_id"] == dr.run_id
    monkeypatch.setenv("AIRFLOW_VAR_RESUME_TEST_FAIL_AT", "")
    second = resume("resume_test_chain", first.dag_run_id)
    assert second.dag_run_id.startswith(f"resume__{dr.run_id}__2__")
    assert (second.root_run_id, second.resume_count) == (dr.run_id, 2)
    assert run_existing_run("resume_test_chain", second.dag_run_id) == "success"
    states = ti_states("resume_test_chain", second.dag_run_id)
    assert states["first"] == ("success", 0) and states["second"] == ("success", 0)
    assert xcom_value("resume_test_chain", second.dag_run_id, "fourth")["sum"] == 12


def test_xcoms_of_the_old_run_are_not_needed(monkeypatch):
    from airflow.models.xcom import XComModel
    from sqlalchemy import delete

    dr = run_dag("resume_example_etl")
    with _session() as session:
        session.execute(delete(XComModel).where(XComModel.run_id == dr.run_id))
        session.commit()
    monkeypatch.setenv("AIRFLOW_VAR_RESUME_EXAMPLE_FAIL", "false")
    outcome = resume("resume_example_etl", dr.run_id)
    assert run_existing_run("resume_example_etl", outcome.dag_run_id) == "success"
    assert xcom_value("resume_example_etl", outcome.dag_run_id, "transform")["total"] == 150


def test_refusals_name_the_reason(monkeypatch):
    from airflow_resume_provider.exceptions import NotResumableError

    ok = run_dag("resume_test_payload", run_conf={"payload_kb": 1})
    verdict = assess("resume_test_payload", ok.run_id)
    assert (verdict.resumable, verdict.reason_code) == (False, "run_not_failed")
    assert "the run is success" in verdict.reason

    dr = run_dag("resume_example_etl")
    path = state_file("resume_example_etl", dr.run_id, "transform")
    path.write_text(path.read_text().replace('"amount":10', '"amount":99'))
    verdict = assess("resume_example_etl", dr.run_id)
    assert verdict.reason_code == "state_invalid"
    assert "failed its integrity check" in verdict.reason
    with pytest.raises(NotResumableError, match="integrity check"):
        resume("resume_example_etl", dr.run_id)

    path.unlink()
    verdict = assess("resume_example_etl", dr.run_id)
    assert verdict.reason_code == "state_missing"
    assert "task 'transform' (try 1)" in verdict.reason

    verdict = assess("resume_example_etl", dr.run_id, from_task_id="load")
    assert verdict.reason_code == "invalid_resume_point"


def _patch_to_failed_row(dag_id: str, run_id: str, task_id: str, owner: str):
    """The row Airflow's API writes for PATCH .../taskInstances/<task> {"new_state": "failed"}."""
    import json

    from airflow.models.log import Log

    return Log(
        event="patch_task_instance",
        owner=owner,
        dag_id=dag_id,
        task_id=task_id,
        run_id=run_id,
        extra=json.dumps({"new_state": "failed", "method": "PATCH"}),
    )


def test_a_task_the_api_server_saw_set_to_failed_by_hand_is_not_resumable():
    from airflow_resume_provider.manual_kill import _write_marker

    dr = run_dag("resume_example_etl")
    with _session() as session:
        session.add(_patch_to_failed_row("resume_example_etl", dr.run_id, "transform", "alice"))
        session.commit()
    # What the API server's listener records when Airflow did set the state by hand.
    identity = {"dag_id": "resume_example_etl", "run_id": dr.run_id, "task_id": "transform"}
    _write_marker({**identity, "map_index": -1, "try_number": 1}, "TaskInstance's state was manually set")

    verdict = assess("resume_example_etl", dr.run_id)
    assert verdict.reason_code == "manual_kill"
    assert "set to failed by hand" in verdict.reason


def test_a_refused_request_in_the_audit_log_does_not_stop_a_task_that_failed_by_itself():
    # Airflow writes the audit row before it checks the request: a viewer's refused PATCH leaves one.
    dr = run_dag("resume_example_etl")
    with _session() as session:
        session.add(_patch_to_failed_row("resume_example_etl", dr.run_id, "transform", "mallory"))
        session.commit()

    verdict = assess("resume_example_etl", dr.run_id)
    assert verdict.resumable, verdict.reason


def test_a_failed_capture_makes_the_task_not_resumable_with_the_reason(monkeypatch, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the state folder should be")
    monkeypatch.setenv("AIRFLOW__RESUME__STATE_FOLDER", str(blocker))
    dr = run_dag("resume_example_etl")
    assert dr.state == "failed"
    verdict = assess("resume_example_etl", dr.run_id)
    assert verdict.reason_code == "state_not_recorded"
    assert "the state of task 'transform' was not recorded" in verdict.reason
    assert "NotADirectoryError: Not a directory" in verdict.reason
    assert str(tmp_path) not in verdict.reason  # no server path


def test_template_rendering_failures_are_captured_and_resumable(monkeypatch):
    # No logical date: the BashOperator's {{ ds }} fails while rendering, before the task runs.
    dr = run_dag("resume_test_chain")
    assert dr.state == "failed"
    assert ti_states("resume_test_chain", dr.run_id)["stamp"][0] == "failed"
    doc = read_json(state_file("resume_test_chain", dr.run_id, "stamp"))
    assert doc["failure"]["exception_type"] == "UndefinedError"
    assert [x["task_id"] for x in doc["inputs"]["xcoms"]] == ["second"]
    assert assess("resume_test_chain", dr.run_id).resumable


def test_with_signing_a_link_task_code_forged_is_signed_by_the_worker_but_never_followed(monkeypatch):
    # Task code can push the bookkeeping XCom; the next task's worker then signs the forged link.
    # Signing does not make it trusted: the link leaves the state folder, so it is refused unread.
    monkeypatch.setenv("AIRFLOW__RESUME__SIGNING_KEY", "integration-signing-key")
    dr = run_dag("resume_test_poisoned", run_conf={"target": "file:///etc/passwd"})
    assert dr.state == "failed"
    state = read_json(state_file("resume_test_poisoned", dr.run_id, "victim"))
    assert state["integrity"]["algorithm"] == "hmac-sha256"
    assert state["previous"]["path"] == "file:///etc/passwd"

    verdict = assess("resume_test_poisoned", dr.run_id)
    assert verdict.reason_code == "state_invalid"
    assert "'file:///etc/passwd', which lies outside the state folder: refused, not read" in verdict.reason
    assert "root:" not in verdict.reason


def test_a_chain_through_a_task_group_resumes_inside_the_group(monkeypatch, ledger):
    dr = run_dag("resume_test_grouped", logical_date=unique_logical_date())
    assert dr.state == "failed"
    verdict = assess("resume_test_grouped", dr.run_id)
    assert verdict.resumable, verdict.reason
    assert verdict.failed_task_id == "load.write"
    assert [(s.task_id, s.action) for s in verdict.plan.tasks] == [
        ("prepare", "restored"),
        ("load.extract", "restored"),
        ("load.write", "run"),
        ("report", "run"),
    ]

    monkeypatch.setenv("AIRFLOW_VAR_RESUME_TEST_GROUPED_FAIL", "false")
    outcome = resume("resume_test_grouped", dr.run_id)
    assert run_existing_run("resume_test_grouped", outcome.dag_run_id) == "success"
    states = ti_states("resume_test_grouped", outcome.dag_run_id)
    assert states["prepare"] == ("success", 0) and states["load.extract"] == ("success", 0)
    assert xcom_value("resume_test_grouped", outcome.dag_run_id, "load.write") == 60
    assert xcom_value("resume_test_grouped", outcome.dag_run_id, "report") == "total=60"

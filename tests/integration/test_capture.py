"""Write-ahead capture: state files beside the logs, written by real task runs on a real metadata DB."""

from __future__ import annotations

import pytest

from tests.helpers import get_dag, read_json, run_dag, state_file, ti_states, xcom_value

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("airflow_db")]


def airflow_log_path(dag_id: str, run_id: str, task_id: str, try_number: int) -> str:
    """The log file Airflow's own FileTaskHandler uses for an attempt."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.log.file_task_handler import FileTaskHandler
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from tests.helpers import log_folder

    with create_session() as session:
        ti = session.scalar(
            select(TaskInstance).where(
                TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id, TaskInstance.task_id == task_id
            )
        )
        relative = FileTaskHandler(str(log_folder()))._render_filename(ti, try_number, session=session)
    return str(log_folder() / relative)


@pytest.fixture
def fail_at(monkeypatch):
    def _set(step: str) -> None:
        monkeypatch.setenv("AIRFLOW_VAR_RESUME_TEST_FAIL_AT", step)

    return _set


def test_failed_example_run_leaves_state_with_inputs_structure_and_failure():
    from airflow_resume_provider.state.storage import decode
    from airflow_resume_provider.structure import linear_order, structure_hash

    dr = run_dag("resume_example_etl")
    assert dr.state == "failed"

    extract_path = state_file("resume_example_etl", dr.run_id, "extract")
    transform_path = state_file("resume_example_etl", dr.run_id, "transform")
    # Where Airflow puts the attempt's log, with .log replaced (dag.test() itself writes no log files).
    assert str(transform_path) == airflow_log_path("resume_example_etl", dr.run_id, "transform", 1).replace(
        ".log", ".resume.json"
    )
    assert not state_file("resume_example_etl", dr.run_id, "load").exists()

    record, _digest = decode(transform_path.read_bytes(), b"", where=str(transform_path))
    xcoms = {(x.task_id, x.key): x.value for x in record.inputs.xcoms}
    assert xcoms[("extract", "return_value")] == xcom_value("resume_example_etl", dr.run_id, "extract")
    assert xcoms[("extract", "return_value")][0] == {"id": 1, "amount": 10}
    assert xcoms[("extract", "row_count")] == 5  # a key pushed with ti.xcom_push is captured too
    assert record.structure.hash == structure_hash(linear_order(get_dag("resume_example_etl")))
    # The task list is recorded once, in the root task's file; the others keep its hash.
    assert record.structure.tasks == []
    assert record.failure is not None
    assert record.failure.exception_type == "RuntimeError"
    assert "resume_example_fail" in record.failure.message
    assert record.failure.try_number == 1
    assert record.failure.cause == "error"

    extract_record, extract_digest = decode(extract_path.read_bytes(), b"", where=str(extract_path))
    assert record.previous is not None
    assert record.previous.path == "file://" + str(extract_path)
    assert record.previous.digest == extract_digest
    assert extract_record.failure is None
    assert extract_record.inputs.xcoms == []
    assert [t for t, _ in extract_record.structure.tasks] == ["extract", "transform", "load"]
    assert extract_record.structure.hash == record.structure.hash


def test_templated_inputs_and_dates_are_recorded(fail_at):
    import pendulum

    fail_at("fifth")
    logical_date = pendulum.datetime(2026, 3, 4, 5, 6, tz="UTC")
    dr = run_dag("resume_test_chain", logical_date=logical_date, run_conf={"batch_size": 10})
    assert dr.state == "failed"
    states = ti_states("resume_test_chain", dr.run_id)
    assert states["fourth"][0] == "success" and states["fifth"][0] == "failed"

    doc = read_json(state_file("resume_test_chain", dr.run_id, "fifth"))
    inputs = doc["inputs"]
    assert inputs["upstream_task_id"] == "fourth"
    assert inputs["conf"] == {"batch_size": 10}
    assert inputs["params"]["region"] == "eu"
    assert inputs["logical_date"] == "2026-03-04T05:06:00+00:00"
    assert inputs["data_interval_start"] is not None
    stamp_doc = read_json(state_file("resume_test_chain", dr.run_id, "stamp"))
    assert [x["task_id"] for x in stamp_doc["inputs"]["xcoms"]] == ["second"]


def test_state_bytes_grow_linearly_with_xcom_bytes():
    dr = run_dag("resume_test_payload")
    assert dr.state == "success"
    sizes = [state_file("resume_test_payload", dr.run_id, f"step_{i:02d}").stat().st_size for i in range(10)]
    payload = 10 * 1024
    # Each file holds its direct upstream's 10 KB once; a copy of all earlier XComs would make
    # the last file about 90 KB and the total about 450 KB.
    assert max(sizes) < 2 * payload
    assert sum(sizes) < 10 * 2 * payload


def test_state_bytes_per_task_do_not_grow_with_the_length_of_the_chain():
    dr = run_dag("resume_test_long")
    assert dr.state == "success"
    sizes = [state_file("resume_test_long", dr.run_id, f"step_{i:02d}").stat().st_size for i in range(80)]
    # The root's file lists the 80 tasks; the others hold the same kind of content wherever they are in
    # the chain (a task list in every file would add about 3 KB to each).
    assert max(sizes[1:]) - min(sizes[1:]) < 100, sizes
    assert sizes[0] > max(sizes[1:]) + 80 * 30


def test_capture_failure_leaves_the_task_result_unchanged(monkeypatch, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the state folder should be")
    monkeypatch.setenv("AIRFLOW__RESUME__STATE_FOLDER", str(blocker))

    dr = run_dag("resume_test_payload", run_conf={"payload_kb": 1})

    assert dr.state == "success"
    assert xcom_value("resume_test_payload", dr.run_id, "step_09") == "x" * 1024
    first = xcom_value("resume_test_payload", dr.run_id, "step_00", key="resume_capture_error")
    assert first["reason"] == "NotADirectoryError: Not a directory"  # summarised: no server path
    error = xcom_value("resume_test_payload", dr.run_id, "step_09", key="resume_capture_error")
    assert error["try_number"] == 1
    # Named once, where it was first lost, however long the chain behind it.
    assert error["reason"] == (
        "the state of the upstream task 'step_08' was not recorded (first lost at task 'step_00': "
        "NotADirectoryError: Not a directory), so the XComs it passes on are not known"
    )


def test_capture_gives_up_after_the_timeout(monkeypatch):
    # An object store that does not answer: the task must go on after capture_timeout.
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts connections, never answers
    port = silent.getsockname()[1]
    monkeypatch.setenv("AIRFLOW__RESUME__STATE_FOLDER", "s3://resume-bucket/state")
    monkeypatch.setenv("AIRFLOW__RESUME__STATE_CONN_ID", "silent_s3")
    monkeypatch.setenv(
        "AIRFLOW_CONN_SILENT_S3",
        '{"conn_type": "aws", "login": "x", "password": "y", '
        f'"extra": {{"endpoint_url": "http://127.0.0.1:{port}", "region_name": "us-east-1"}}}}',
    )
    monkeypatch.setenv("AIRFLOW__RESUME__CAPTURE_TIMEOUT", "2")
    try:
        dr = run_dag("resume_test_payload", run_conf={"payload_kb": 1})
    finally:
        silent.close()
    assert dr.state == "success"
    error = xcom_value("resume_test_payload", dr.run_id, "step_00", key="resume_capture_error")
    assert "capture_timeout=2s" in error["reason"]


# --- announcements the XCom backend refuses; deferred tasks -------------------------------------------


def _assess(dag_id: str, run_id: str):
    from airflow.utils.session import create_session

    from airflow_resume_provider.resume import assess

    with create_session(scoped=False) as session:
        return assess(session, dag_id, run_id)


def test_a_refused_announcement_leaves_the_tasks_as_they_would_be_without_the_provider(monkeypatch):
    # The XCom backend refuses the provider's values: the task's own pushes, and the next ones, go on.
    from airflow.sdk.execution_time import task_runner

    from tests.xcom_backend import RejectingXComBackend

    monkeypatch.setattr(task_runner, "XCom", RejectingXComBackend)
    monkeypatch.setenv("AIRFLOW_VAR_RESUME_TEST_XCOM_REJECTED_FAIL", "true")
    dag_id = "resume_test_xcom_rejected"

    dr = run_dag(dag_id)

    assert ti_states(dag_id, dr.run_id) == {"pushes": ("success", 1), "fails": ("failed", 1)}
    assert xcom_value(dag_id, dr.run_id, "pushes", key="extra") == {"id": 1}
    assert xcom_value(dag_id, dr.run_id, "pushes", key="second") == 2
    assert xcom_value(dag_id, dr.run_id, "pushes", key="resume_state_ref") is None
    error = xcom_value(dag_id, dr.run_id, "fails", key="resume_capture_error")
    assert error["stage"] == "capture"
    verdict = _assess(dag_id, dr.run_id)
    assert verdict.resumable is False
    assert verdict.reason_code == "state_not_recorded"
    assert "could not be announced" in verdict.reason
    assert "this XCom backend refuses 'resume_state_ref'" in verdict.reason


def test_a_key_that_cannot_be_announced_marks_the_state_not_recorded_downstream(monkeypatch):
    # The first announcement passes, the one adding a key fails: the task goes on, and the next task's
    # state, whose inputs would miss that key, is not recorded either.
    from airflow.sdk.bases.xcom import BaseXCom
    from airflow.sdk.execution_time import task_runner

    class RefusesTheSecondAnnouncement(BaseXCom):
        seen = 0

        @staticmethod
        def serialize_value(value, *, key=None, **kwargs):
            if key == "resume_state_ref" and kwargs.get("task_id") == "pushes":
                RefusesTheSecondAnnouncement.seen += 1
                if RefusesTheSecondAnnouncement.seen == 2:
                    raise ConnectionError("Execution API unreachable")
            return BaseXCom.serialize_value(value, key=key, **kwargs)

    monkeypatch.setattr(task_runner, "XCom", RefusesTheSecondAnnouncement)
    monkeypatch.setenv("AIRFLOW_VAR_RESUME_TEST_XCOM_REJECTED_FAIL", "true")
    dag_id = "resume_test_xcom_rejected"

    dr = run_dag(dag_id)

    assert ti_states(dag_id, dr.run_id) == {"pushes": ("success", 1), "fails": ("failed", 1)}
    assert xcom_value(dag_id, dr.run_id, "pushes", key="second") == 2
    error = xcom_value(dag_id, dr.run_id, "pushes", key="resume_capture_error")
    assert "the XCom key 'extra' was pushed but could not be announced" in error["reason"]
    downstream = xcom_value(dag_id, dr.run_id, "fails", key="resume_capture_error")
    assert "the state of the upstream task 'pushes' was not recorded" in downstream["reason"]
    verdict = _assess(dag_id, dr.run_id)
    assert verdict.reason_code == "state_not_recorded"
    assert "upstream task 'pushes'" in verdict.reason


def test_a_deferred_task_keeps_the_keys_it_pushed_before_and_after_the_deferral(monkeypatch):
    # dag.test() runs the trigger in line and the task again in the same process (axcom_push: end to end).
    monkeypatch.setenv("AIRFLOW_VAR_RESUME_TEST_DEFERRABLE_FAIL", "true")
    monkeypatch.setenv("AIRFLOW_VAR_RESUME_TEST_DEFERRABLE_AXCOM", "false")
    dag_id = "resume_test_deferrable"

    dr = run_dag(dag_id)

    assert ti_states(dag_id, dr.run_id) == {"defers": ("success", 1), "consume": ("failed", 1)}
    announced = xcom_value(dag_id, dr.run_id, "defers", key="resume_state_ref")
    assert announced["xcom_keys"] == ["after_defer", "before_defer"]
    record = read_json(state_file(dag_id, dr.run_id, "consume"))
    assert {x["key"] for x in record["inputs"]["xcoms"]} == {"return_value", "before_defer", "after_defer"}
    assert _assess(dag_id, dr.run_id).resumable is True

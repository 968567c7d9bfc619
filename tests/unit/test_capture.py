"""The XCom key tracker of the capture: what is announced when a push of the provider fails."""

from __future__ import annotations

import pytest

from airflow_resume_provider import capture


class FakeTaskInstance:
    dag_id, run_id, task_id, map_index, try_number = "d", "r", "t", -1, 1

    def __init__(self):
        self.pushed = []

    def xcom_push(self, key, value):
        self.pushed.append((key, value))


@pytest.fixture
def announced(monkeypatch):
    ti = FakeTaskInstance()
    announcement = {
        "path": "file:///s/attempt=1.resume.json",
        "digest": "d",
        "xcom_keys": [],
        "map_index": -1,
    }
    monkeypatch.setitem(capture._announced, capture._task_key(ti), announcement)
    return ti


def test_a_new_key_is_announced_at_once(announced):
    def push(ti, key, value):
        ti.pushed.append((key, value))

    capture._announce_new_key(announced, "rows", push)
    capture._announce_new_key(announced, "rows", push)  # known: not announced again
    capture._announce_new_key(announced, "return_value", push)

    assert [key for key, _ in announced.pushed] == ["resume_state_ref"]
    assert announced.pushed[0][1]["xcom_keys"] == ["rows"]


def test_a_key_that_cannot_be_announced_is_recorded_and_tracking_stops(announced):
    def refuse(ti, key, value):
        raise ValueError("refused by the XCom backend")

    capture._announce_new_key(announced, "rows", refuse)

    assert capture._task_key(announced) not in capture._announced
    ((key, error),) = announced.pushed
    assert key == "resume_capture_error"
    assert error["stage"] == "capture"
    assert error["reason"] == (
        "the XCom key 'rows' was pushed but could not be announced: ValueError: refused by the XCom backend"
    )
    capture._announce_new_key(announced, "more", refuse)  # no longer tracked: nothing raised, nothing pushed
    assert len(announced.pushed) == 1

"""``run_bounded``: state I/O never holds a task longer than ``[resume] capture_timeout``."""

from __future__ import annotations

import threading
import time

import pytest

from airflow_resume_provider.capture import run_bounded

TIMEOUT = 0.2


class WriteFailed(Exception):
    pass


@pytest.fixture
def release():
    """An event that unblocks any function a test leaves hanging."""
    event = threading.Event()
    yield event
    event.set()


def test_returns_the_functions_result():
    assert run_bounded(lambda: {"ok": 1}, TIMEOUT, "Writing x") == {"ok": 1}


def test_returns_none_result():
    assert run_bounded(lambda: None, TIMEOUT, "Writing x") is None


def test_hanging_function_raises_timeout_naming_capture_timeout(release):
    started = time.monotonic()
    with pytest.raises(TimeoutError) as exc:
        run_bounded(release.wait, TIMEOUT, "Writing file:///logs/attempt=1.resume.json")
    elapsed = time.monotonic() - started
    assert str(exc.value) == (
        "Writing file:///logs/attempt=1.resume.json did not finish within [resume] capture_timeout=0.2s"
    )
    assert TIMEOUT <= elapsed < 2


def test_timeout_message_shows_the_timeout_used(release):
    with pytest.raises(TimeoutError, match=r"capture_timeout=0\.05s"):
        run_bounded(release.wait, 0.05, "Opening s3://b/k")


def test_reraises_the_functions_own_error():
    error = WriteFailed("disk full on /logs")

    def fail():
        raise error

    with pytest.raises(WriteFailed) as exc:
        run_bounded(fail, TIMEOUT, "Writing x")
    assert exc.value is error
    assert str(exc.value) == "disk full on /logs"


def test_reraises_os_errors_unchanged(tmp_path):
    missing = tmp_path / "missing"
    with pytest.raises(FileNotFoundError) as exc:
        run_bounded(missing.read_bytes, TIMEOUT, "Reading")
    assert exc.value.filename == str(missing)


def test_reraises_base_exceptions():
    def leave():
        raise SystemExit(3)

    with pytest.raises(SystemExit) as exc:
        run_bounded(leave, TIMEOUT, "Writing x")
    assert exc.value.code == 3


def test_function_runs_in_a_helper_thread():
    seen = run_bounded(threading.current_thread, TIMEOUT, "x")
    assert seen is not threading.current_thread()
    assert seen.name == "resume-state-io"
    assert seen.daemon


def test_fast_function_does_not_wait_for_the_timeout():
    started = time.monotonic()
    run_bounded(lambda: 1, 5, "x")
    assert time.monotonic() - started < 1

"""The scheduler's side of resume on retry: a worker that keeps dying never costs a process per event."""

from __future__ import annotations

import time

import pytest

from airflow_resume_provider.retry import handoff


@pytest.fixture
def dying_worker(monkeypatch):
    monkeypatch.setattr(handoff, "WORKER_MODULE", "tests.unit.dying_worker")
    monkeypatch.setattr(handoff, "_restart_backoff", handoff.RESTART_BACKOFF_SECONDS)
    monkeypatch.setattr(handoff, "_next_restart", 0.0)
    handoff.start_worker()
    yield
    handoff.stop_worker()


def _wait_dead(worker: handoff.WorkerProcess) -> None:
    worker.process.wait(timeout=30)


def test_a_dying_worker_is_restarted_with_a_growing_delay(dying_worker, monkeypatch):
    first = handoff._worker
    assert first is not None
    _wait_dead(first)

    second = handoff.current_worker()  # dead: started again at once
    assert second is not None and second is not first
    _wait_dead(second)
    started = {first.process.pid, second.process.pid}
    for _ in range(50):  # many run events within the delay: no new process
        assert handoff.current_worker() is None
    assert handoff._worker is second

    clock = time.monotonic()
    for delay in (1, 2, 4, 8):
        clock += delay
        monkeypatch.setattr(handoff.time, "monotonic", lambda now=clock: now)
        worker = handoff.current_worker()
        assert worker is not None, f"not restarted after {delay} s"
        started.add(worker.process.pid)
        _wait_dead(worker)
        assert handoff.current_worker() is None  # the next delay has not passed
    assert len(started) == 6
    assert handoff._restart_backoff == 32


def test_the_delay_stops_growing_at_its_maximum(dying_worker, monkeypatch):
    monkeypatch.setattr(handoff, "_restart_backoff", handoff.MAX_RESTART_BACKOFF_SECONDS)
    assert handoff._worker is not None
    _wait_dead(handoff._worker)
    worker = handoff.current_worker()
    assert worker is not None
    assert handoff._restart_backoff == handoff.MAX_RESTART_BACKOFF_SECONDS
    handoff.stop_worker()


def test_a_handed_over_run_never_blocks_or_raises_when_the_worker_is_gone(dying_worker):
    worker = handoff._worker
    assert worker is not None
    _wait_dead(worker)
    for _ in range(3):
        worker.submit("dag", "run")  # broken pipe: logged, the sweep covers it

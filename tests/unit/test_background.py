"""
Kill-file writes of a bulk "mark failed" go to a small bounded pool of threads: 500 task instances set
to failed at once queue 500 writes on at most ``MAX_WORKERS`` threads, and the request never waits.
"""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

from airflow_resume_provider import background, guard, manual_kill

MESSAGE = "TaskInstance's state was manually set to `failed`."


def test_500_kill_file_writes_use_at_most_the_pools_threads_and_never_block(monkeypatch):
    release = threading.Event()
    lock = threading.Lock()
    threads: set[int] = set()
    written: list[str] = []
    all_written = threading.Event()

    def slow_write(identity, message):
        release.wait(30)  # storage that is slow: every write is still pending when the 500th is queued
        with lock:
            threads.add(threading.get_ident())
            written.append(identity["task_id"])
            if len(written) == 500:
                all_written.set()

    monkeypatch.setattr(manual_kill, "_write_marker", slow_write)
    before = {t.ident for t in threading.enumerate()}

    started = time.monotonic()
    for index in range(500):
        ti = SimpleNamespace(dag_id="etl", run_id="r1", task_id=f"t{index}", map_index=-1, try_number=1)
        manual_kill.record_manual_failure(ti, MESSAGE)
    queued_in = time.monotonic() - started

    new_threads = [t for t in threading.enumerate() if t.ident not in before]
    assert len(new_threads) <= background.MAX_WORKERS == 4
    assert queued_in < 5  # no call waited for a write (each write blocks until released)
    release.set()
    assert all_written.wait(30)
    assert sorted(written) == sorted(f"t{i}" for i in range(500))
    assert len(threads) <= background.MAX_WORKERS


def test_a_job_that_raises_is_logged_and_leaves_the_pool_working(monkeypatch):
    logged = threading.Semaphore(0)
    monkeypatch.setattr(guard.log, "warning", lambda *args, **kwargs: logged.release())
    done = threading.Event()

    def broken():
        raise RuntimeError("storage down")

    for _ in range(background.MAX_WORKERS * 2):
        background.submit(broken)
    for _ in range(background.MAX_WORKERS * 2):
        assert logged.acquire(timeout=10)
    background.submit(done.set)
    assert done.wait(10)

"""
A small bounded pool of daemon threads for work that must not hold up a request (kill-file writes).

At most :data:`MAX_WORKERS` threads per process, started on demand, however many jobs are queued: a
bulk "mark failed" of 500 task instances queues 500 jobs, not 500 threads. The threads are daemons,
so a process that exits is never held up by a slow storage write; a job queued then is lost, as it
was with a thread of its own (the audit log still has what the job records). A forked child starts
its own threads (the parent's do not exist there) and none of the parent's queued jobs.
"""

from __future__ import annotations

import os
import queue
import threading
from typing import TYPE_CHECKING

from airflow_resume_provider.guard import guarded

if TYPE_CHECKING:
    from collections.abc import Callable

MAX_WORKERS = 4

_jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
_workers: list[threading.Thread] = []
_lock = threading.Lock()


def _after_fork() -> None:
    """A forked child starts empty: the parent's threads, queued jobs and lock state are not its own."""
    global _jobs, _lock
    _jobs = queue.SimpleQueue()
    _lock = threading.Lock()
    _workers.clear()


os.register_at_fork(after_in_child=_after_fork)


def _work() -> None:
    while True:
        job = _jobs.get()
        with guarded("A background job of the resume provider", "the task or run"):
            job()


def submit(job: Callable[[], None]) -> None:
    """Queue ``job`` for one of the pool's threads; returns at once."""
    _jobs.put(job)
    with _lock:
        if len(_workers) < MAX_WORKERS:
            thread = threading.Thread(target=_work, name=f"resume-background-{len(_workers)}", daemon=True)
            thread.start()
            _workers.append(thread)

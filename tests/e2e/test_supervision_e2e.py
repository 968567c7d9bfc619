"""
Supervision of resume on retry with a real scheduler: the retry worker process, its replacement when it
died, its end when the scheduler is gone, the audit log of automatic retries and the DAG tag that the
retry sweep reads.

The retry worker is ``python -m airflow_resume_provider.retry...``, a child of the scheduler process.
"""

from __future__ import annotations

import contextlib
import os
import signal
from typing import Any

import psutil
import pytest

from tests.e2e.runs import wait_for_chain_run
from tools.airflow_stack import wait_for

pytestmark = pytest.mark.e2e

WORKER_MARK = "airflow_resume_provider.retry"
RETRY_COMPONENT = "airflow-resume-provider (scheduler)"
RETRIES_TAG = "resume:retries"


@pytest.fixture
def ledger(stack, tmp_path):
    with stack.variables(resume_test_ledger_dir=str(tmp_path)):
        yield tmp_path


def retry_workers(stack) -> list[psutil.Process]:
    """The live retry workers among the descendants of the stack's scheduler."""
    try:
        scheduler = psutil.Process(stack.processes["scheduler"].pid)
        children = scheduler.children(recursive=True)
    except (KeyError, psutil.NoSuchProcess):
        return []
    found = []
    for proc in children:
        try:
            if proc.status() != psutil.STATUS_ZOMBIE and WORKER_MARK in " ".join(proc.cmdline()):
                found.append(proc)
        except psutil.NoSuchProcess:
            continue
    return found


def the_retry_worker(stack, timeout: float = 120) -> psutil.Process:
    workers = wait_for(lambda: retry_workers(stack), timeout=timeout, interval=1, what="a retry worker")
    assert len(workers) == 1, [w.cmdline() for w in workers]
    return workers[0]


def ended(proc: psutil.Process) -> bool:
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def dag_tags(stack, dag_id: str) -> set[str]:
    with stack.client() as c:
        resp = c.get(f"/api/v2/dags/{dag_id}")
    assert resp.status_code == 200, resp.text
    return {tag["name"] for tag in resp.json()["tags"]}


def event_logs(stack, **params: Any) -> list[dict[str, Any]]:
    with stack.client() as c:
        resp = c.get("/api/v2/eventLogs", params={"limit": 100, **params})
    assert resp.status_code == 200, resp.text
    return resp.json()["event_logs"]


def ensure_a_retry_worker(stack) -> psutil.Process:
    """The scheduler's retry worker; a scheduler left without one (by an earlier test) is restarted first."""
    try:
        return the_retry_worker(stack, timeout=30)
    except TimeoutError:
        restart_scheduler(stack)
        return the_retry_worker(stack)


def restart_scheduler(stack) -> None:
    """Stop what is left of the scheduler's process group, start a new scheduler, wait until it works."""
    stack.stop_component("scheduler", sig=signal.SIGKILL)
    stack.start_component("scheduler", ["scheduler"])
    # A scheduler killed a moment ago may still count as healthy: wait for the new one's retry worker too.
    the_retry_worker(stack, timeout=180)
    wait_for(stack._healthy, timeout=180, interval=1, what="scheduler healthy again")


def test_a_dag_with_retries_carries_the_tag_the_sweep_reads(stack):
    stack.wait_for_dag("resume_test_retry_one")
    assert RETRIES_TAG in dag_tags(stack, "resume_test_retry_one")
    stack.wait_for_dag("resume_example_etl")
    assert RETRIES_TAG not in dag_tags(stack, "resume_example_etl")  # resume, but no retries


def test_an_automatic_retry_is_in_the_audit_log(stack, ledger):
    dag = "resume_test_retry_fresh"
    with stack.variables_from({f"{dag}_failures": "1"}):
        root = stack.trigger(dag)
        assert stack.wait_for_run(dag, root) == "failed"
        retry = wait_for_chain_run(stack, dag, root, 1)

        entries = wait_for(
            lambda: event_logs(stack, event="resume_created", dag_id=dag, run_id=root),
            timeout=60,
            interval=1,
            what=f"a resume_created audit entry for {root}",
        )
        assert len(entries) == 1, entries
        assert entries[0]["owner"] == RETRY_COMPONENT, entries
        assert retry in (entries[0].get("extra") or ""), entries
        assert stack.wait_for_run(dag, retry) == "success"


def test_a_retry_worker_that_died_is_replaced(stack, ledger):
    dag = "resume_test_retry_one"
    with stack.variables_from({f"{dag}_failures": "2"}):
        worker = ensure_a_retry_worker(stack)
        try:
            worker.send_signal(signal.SIGKILL)
            wait_for(lambda: ended(worker), timeout=30, interval=0.5, what="the retry worker killed")

            root = stack.trigger(dag)
            assert stack.wait_for_run(dag, root) == "failed"
            retry = wait_for_chain_run(stack, dag, root, 1)
            replacement = the_retry_worker(stack)
            assert replacement.pid != worker.pid
            assert stack.wait_for_run(dag, retry) == "failed"  # fails twice, then retries are exhausted
        finally:
            ensure_a_retry_worker(stack)  # leave a working scheduler to later tests


def test_the_retry_worker_ends_with_its_scheduler(stack):
    worker = ensure_a_retry_worker(stack)
    # The scheduler is ended on purpose: the stack does not count it as a component that died.
    with stack.expecting_exit("scheduler") as scheduler:
        try:
            os.kill(scheduler.pid, signal.SIGKILL)  # the main process only, not its process group
            wait_for(lambda: ended(worker), timeout=10, interval=0.2, what="the retry worker gone")
        finally:
            with contextlib.suppress(ProcessLookupError):  # what is left of its process group
                os.killpg(scheduler.pid, signal.SIGKILL)
            scheduler.wait(timeout=30)
            restart_scheduler(stack)

"""
Resume on an Airflow cluster in its HA shape (:class:`tools.cluster_stack.ClusterStack`): two
api-servers, two schedulers, one dag-processor and two Celery workers (Redis broker, PostgreSQL
metadata DB and result backend), remote logging to S3 on moto_server. Each worker has its own local
log folder, so a task's state can only reach the other components through S3.

The suite always uses a PostgreSQL database of its own, whatever ``RESUME_TEST_DB`` says; its tests
are marked ``cluster``, and ``scripts/test.sh`` runs them once (``-m cluster``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.e2e.runs import chain_runs, q, resume_runs, wait_for_chain_run, wait_for_note, xcom_value
from tools.airflow_stack import REPO, wait_for
from tools.cluster_stack import API_SERVERS, SCHEDULERS, WORKERS, ClusterStack
from tools.moto_s3 import aws_connection, moto_s3

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]

BUCKET = "airflow-logs"
API = "/resume/api/v1"
CHAIN = "resume_test_chain"
ETL = "resume_example_etl"
CLUSTER_DAG = "resume_test_cluster"
RETRY_MARK = "airflow_resume_provider.retry"
TREE_PARENT = "resume_test_cluster_tree_parent"
TREE_CHILD = "resume_test_cluster_tree_child"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with moto_s3(tmp_path_factory.mktemp("cluster-moto"), BUCKET) as (endpoint, s3):
        stack = ClusterStack(
            home=tmp_path_factory.mktemp("airflow-cluster"),
            extra_env={
                "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p),
                "AIRFLOW__LOGGING__REMOTE_LOGGING": "True",
                "AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER": f"s3://{BUCKET}/logs",
                "AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID": "aws_moto",
                "AIRFLOW_CONN_AWS_MOTO": aws_connection(endpoint),
            },
            s3=s3,
        )
        try:
            stack.start()
            yield stack
        finally:
            stack.stop()
            for name in (*API_SERVERS, *SCHEDULERS, "dag-processor"):
                assert "UNEXPECTED COMMIT" not in stack.component_log(name), f"{name}: UNEXPECTED COMMIT"


@pytest.fixture
def ledger(cluster, tmp_path):
    """Where the test DAGs note each task they execute (all workers share this machine's disk)."""

    def executed(name: str) -> list[str]:
        path = tmp_path / f"{name}.txt"
        return path.read_text().split() if path.exists() else []

    with cluster.variables(
        resume_test_ledger=str(tmp_path / "chain.txt"), resume_test_ledger_dir=str(tmp_path)
    ):
        yield executed


# --- helpers -------------------------------------------------------------------------------------


def resume_url(cluster: ClusterStack, api: int, dag_id: str, run_id: str) -> str:
    return f"{cluster.api_url(api)}{API}/dags/{dag_id}/dagRuns/{q(run_id)}"


def verdict(cluster: ClusterStack, api: int, dag_id: str, run_id: str) -> dict[str, Any]:
    resp = httpx.get(resume_url(cluster, api, dag_id, run_id), headers=bearer(cluster), timeout=60)
    assert resp.status_code == 200, resp.text
    return resp.json()


def bearer(cluster: ClusterStack) -> dict[str, str]:
    return {"Authorization": f"Bearer {cluster.token()}"}


def s3_state(cluster: ClusterStack, dag_id: str, run_id: str, task_id: str, attempt: int = 1) -> dict:
    key = f"logs/dag_id={dag_id}/run_id={run_id}/task_id={task_id}/attempt={attempt}.resume.json"
    return json.loads(cluster.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())


def s3_state_exists(cluster: ClusterStack, dag_id: str, run_id: str, task_id: str) -> bool:
    try:
        s3_state(cluster, dag_id, run_id, task_id)
    except cluster.s3.exceptions.NoSuchKey:
        return False
    return True


def local_state_files(cluster: ClusterStack) -> list[Path]:
    return [p for w in WORKERS for p in Path(cluster.worker_logs(w)).rglob("*.resume.json")]


def ti_state(cluster: ClusterStack, dag_id: str, run_id: str, task_id: str) -> str | None:
    return cluster.task_instances(dag_id, run_id).get(task_id, {}).get("state")


def retry_workers(cluster: ClusterStack, scheduler: str) -> list[psutil.Process]:
    """The live resume retry workers that ``scheduler`` started."""
    proc = cluster.processes.get(scheduler)
    if proc is None or proc.poll() is not None:
        return []
    found = []
    for child in psutil.Process(proc.pid).children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE and RETRY_MARK in " ".join(child.cmdline()):
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


def require(cluster: ClusterStack, *names: str) -> None:
    """Start again the components an earlier test of the module killed, and wait until they work."""
    args = dict(cluster.components())
    for name in names:
        proc = cluster.processes.get(name)
        if proc is None or proc.poll() is not None:
            cluster.stop_component(name)
            cluster.start_component(name, args[name])
    for name in names:
        if name in WORKERS:
            wait_for(lambda n=name: cluster.worker_ready(n), timeout=180, what=f"Celery worker {name} ready")
        if name in SCHEDULERS:
            wait_for(lambda n=name: len(retry_workers(cluster, n)) == 1, timeout=180, what=f"{name} running")


def kill_tree(proc: psutil.Process) -> None:
    """SIGKILL a process and all its descendants at once, as a machine or container crash would."""
    procs = [proc, *proc.children(recursive=True)]
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    psutil.wait_procs(procs, timeout=30)


def xcom_text(cluster: ClusterStack, dag_id: str, run_id: str, task_id: str) -> str:
    """A task's ``return_value`` that is a string (the REST API shows it as it is)."""
    with cluster.client() as c:
        resp = c.get(
            f"/api/v2/dags/{dag_id}/dagRuns/{q(run_id)}/taskInstances/{task_id}/xcomEntries/return_value"
        )
    assert resp.status_code == 200, resp.text
    return resp.json()["value"]


def audit_entries(cluster: ClusterStack, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    with cluster.client() as c:
        resp = c.get(
            "/api/v2/eventLogs", params={"event": "resume_created", "dag_id": dag_id, "run_id": run_id}
        )
    assert resp.status_code == 200, resp.text
    return [e for e in resp.json()["event_logs"] if e["run_id"] == run_id]


# --- tests ---------------------------------------------------------------------------------------


def test_a_run_failed_on_the_cluster_resumes_through_the_other_api_server(cluster, ledger):
    with cluster.variables(resume_test_fail_at="fourth"):
        root = cluster.trigger(CHAIN, conf={"region": "ap"}, logical_date="2026-03-04T05:06:00Z")
        assert cluster.wait_for_run(CHAIN, root) == "failed"
        assert ti_state(cluster, CHAIN, root, "fourth") == "failed"

        found = verdict(cluster, 2, CHAIN, root)
        assert found["resumable"] is True, found["reason"]
        assert found["failed_task_id"] == "fourth"
        assert [t["action"] for t in found["plan"]["tasks"]] == ["restored"] * 3 + ["run"] * 2
        assert found["failure"]["exception_type"] == "ValueError"

        cluster.set_variable("resume_test_fail_at", "")
        resp = httpx.post(
            resume_url(cluster, 2, CHAIN, root) + "/resume", headers=bearer(cluster), timeout=120
        )
        assert resp.status_code == 201, resp.text
        new_run = resp.json()["dag_run_id"]
        assert verdict(cluster, 1, CHAIN, root)["resumed_run_id"] == new_run  # the other server knows it
        assert cluster.wait_for_run(CHAIN, new_run) == "success"

    # The earlier tasks were restored, not run again.
    tis = cluster.task_instances(CHAIN, new_run)
    for task_id in ("first", "second", "stamp"):
        assert (tis[task_id]["state"], tis[task_id]["try_number"]) == ("success", 0), tis[task_id]
    assert tis["fourth"]["try_number"] == 1 and tis["fourth"]["hostname"] in WORKERS
    assert ledger("chain") == ["first", "second", "fourth", "fourth", "fifth"]

    # The resumed task saw the inputs the failed attempt had: the same XComs, conf, params and date.
    original = s3_state(cluster, CHAIN, root, "fourth")["inputs"]
    again = s3_state(cluster, CHAIN, new_run, "fourth")["inputs"]
    for key in ("xcoms", "conf", "params", "logical_date", "data_interval_start", "data_interval_end"):
        assert again[key] == original[key], key
    result = xcom_value(cluster, CHAIN, new_run, "fourth")
    assert result == {
        "sum": sum(xcom_value(cluster, CHAIN, root, "second")["double"]),
        "batch": xcom_value(cluster, CHAIN, root, "first", key="batch"),
        "stamp": xcom_text(cluster, CHAIN, root, "stamp"),
        "ds": "2026-03-04",
        "conf": original["conf"],
        "params": original["params"],
    }
    assert result["conf"] == {"region": "ap"} and result["params"]["region"] == "ap"
    assert result["stamp"].startswith("2026-03-04 2026-03-04T05:06:00+00:00")

    # State reached the api-servers and the other worker through S3 only.
    assert local_state_files(cluster) == []


def test_concurrent_resume_requests_on_both_api_servers_create_one_run(cluster):
    with cluster.variables(resume_example_fail="true"):
        root = cluster.trigger(ETL)
        assert cluster.wait_for_run(ETL, root) == "failed"
        cluster.set_variable("resume_example_fail", "false")
        headers = bearer(cluster)
        start = threading.Barrier(20)

        def post(i: int) -> httpx.Response:
            start.wait(timeout=60)
            return httpx.post(
                resume_url(cluster, 1 + i % 2, ETL, root) + "/resume", headers=headers, timeout=180
            )

        with ThreadPoolExecutor(max_workers=20) as pool:
            responses = list(pool.map(post, range(20)))

        unexpected = [(r.status_code, r.text[:500]) for r in responses if r.status_code not in (200, 201)]
        assert unexpected == []
        assert sorted(r.status_code for r in responses) == [200] * 19 + [201]
        assert len({r.json()["dag_run_id"] for r in responses}) == 1
        new_run = responses[0].json()["dag_run_id"]
        assert resume_runs(cluster, ETL, root) == [new_run]
        # Both api-servers name the same resumed run.
        assert [verdict(cluster, api, ETL, root)["resumed_run_id"] for api in (1, 2)] == [new_run] * 2
        assert len(audit_entries(cluster, ETL, root)) == 1
        assert cluster.wait_for_run(ETL, new_run) == "success"


def test_with_two_schedulers_a_parent_retry_resumes_its_failed_child_once(cluster, ledger):
    # Both workers: the parent's polling trigger step holds one while the child's tasks run on the other.
    require(cluster, *SCHEDULERS, *WORKERS)
    parent, child = TREE_PARENT, TREE_CHILD
    root = cluster.trigger(parent)
    assert cluster.wait_for_run(parent, root) == "failed"
    child_root = xcom_value(cluster, parent, root, "run_child", key="trigger_run_id")
    assert cluster.run_state(child, child_root) == "failed"

    # The retry of the parent resumes the child first, then the parent, whose step attaches to it.
    retried = wait_for_chain_run(cluster, parent, root, 1)
    assert cluster.wait_for_run(parent, retried) == "success"
    [resumed_child] = resume_runs(cluster, child, child_root)
    assert cluster.run_state(child, resumed_child) == "success"
    assert xcom_value(cluster, parent, retried, "run_child", key="trigger_run_id") == resumed_child
    assert xcom_value(cluster, parent, retried, "p_last") == resumed_child
    lineage = verdict(cluster, 2, child, resumed_child)["lineage"]
    assert lineage["parent_tree_run"]["run_id"] == retried

    # One resumed run at each level, although both schedulers' retry workers swept the failure (every
    # 2 s) while the resumed runs ran; the parent's step triggered no other child run.
    assert chain_runs(cluster, parent, root) == {1: retried}
    assert [r["dag_run_id"] for r in cluster.dag_runs(child)] == [child_root, resumed_child]
    assert len(audit_entries(cluster, parent, root)) == len(audit_entries(cluster, child, child_root)) == 1
    note = wait_for_note(cluster, parent, root, "Retried automatically")
    assert note.count("Retried automatically") == 1, note
    # The resumed runs executed the failed steps and those after them only.
    assert ledger(child) == ["c_first", "c_middle", "c_middle", "c_last"]
    assert ledger(parent) == ["p_first", "p_last"]
    child_tis = cluster.task_instances(child, resumed_child)
    assert (child_tis["c_first"]["state"], child_tis["c_first"]["try_number"]) == ("success", 0)
    assert xcom_value(cluster, child, resumed_child, "c_last") == 42
    assert cluster.task_instances(parent, retried)["p_first"]["try_number"] == 0
    assert all(len(retry_workers(cluster, s)) == 1 for s in SCHEDULERS)


def test_a_worker_killed_mid_task_leaves_a_run_that_resumes_on_the_surviving_worker(cluster):
    require(cluster, *WORKERS)
    with cluster.variables(resume_test_cluster_hold="true"):
        root = cluster.trigger(CLUSTER_DAG)
        wait_for(
            lambda: (
                ti_state(cluster, CLUSTER_DAG, root, "work") == "running"
                and s3_state_exists(cluster, CLUSTER_DAG, root, "work")
            ),
            timeout=180,
            what="work running, its state in S3",
        )
        victim = cluster.task_instances(CLUSTER_DAG, root)["work"]["hostname"]
        assert victim in WORKERS
        survivor = next(w for w in WORKERS if w != victim)
        kill_tree(psutil.Process(cluster.processes.pop(victim).pid))

        # Its task stops heartbeating; the scheduler fails it (no task retries) and so the run.
        assert cluster.wait_for_run(CLUSTER_DAG, root) == "failed"
    found = verdict(cluster, 2, CLUSTER_DAG, root)
    assert found["resumable"] is True, found["reason"]
    assert found["failed_task_id"] == "work"
    assert found["failure"]["cause"] == "infrastructure"  # the task never got to record an error
    assert found["failure"]["exception_type"] is None

    resp = httpx.post(
        resume_url(cluster, 1, CLUSTER_DAG, root) + "/resume", headers=bearer(cluster), timeout=120
    )
    assert resp.status_code == 201, resp.text
    new_run = resp.json()["dag_run_id"]
    assert cluster.wait_for_run(CLUSTER_DAG, new_run) == "success"
    tis = cluster.task_instances(CLUSTER_DAG, new_run)
    assert tis["prepare"]["try_number"] == 0
    assert tis["work"]["hostname"] == survivor and tis["report"]["hostname"] == survivor
    original = xcom_value(cluster, CLUSTER_DAG, root, "prepare")
    assert original["made_in"] == root
    assert xcom_value(cluster, CLUSTER_DAG, new_run, "report") == original


def test_with_two_schedulers_a_failure_is_retried_exactly_once(cluster, ledger):
    require(cluster, *SCHEDULERS)
    dag = "resume_test_retry_one"
    with cluster.variables_from({f"{dag}_failures": "1"}):
        root = cluster.trigger(dag)
        assert cluster.wait_for_run(dag, root) == "failed"
        first = wait_for_chain_run(cluster, dag, root, 1)
        assert cluster.wait_for_run(dag, first) == "success"

    assert chain_runs(cluster, dag, root) == {1: first}
    assert len(audit_entries(cluster, dag, root)) == 1
    note = wait_for_note(cluster, dag, root, "Retried automatically")
    assert note.count("Retried automatically") == 1, note
    assert ledger(dag) == ["first", "flaky", "flaky", "last"]
    # Both schedulers (and their retry workers) were running throughout.
    assert all(len(retry_workers(cluster, s)) == 1 for s in SCHEDULERS)


def test_the_retry_is_made_once_when_the_scheduler_that_failed_the_run_is_killed(cluster, ledger):
    require(cluster, *SCHEDULERS)
    dag = "resume_test_retry_crash"
    with cluster.variables_from({f"{dag}_failures": "1"}):
        # Hold both schedulers' retry workers, so that the failure is handed to one that will die with
        # its scheduler before it can act: the retry must then come from the other scheduler.
        held = {s: retry_workers(cluster, s)[0] for s in SCHEDULERS}
        for worker in held.values():
            worker.send_signal(signal.SIGSTOP)
        try:
            root = cluster.trigger(dag)
            assert cluster.wait_for_run(dag, root) == "failed"
            marked = wait_for(
                lambda: [s for s in SCHEDULERS if f": {root}, state:running" in failed_marks(cluster, s)],
                timeout=30,
                what=f"the scheduler that failed {root} named in its log",
            )
            assert len(marked) == 1, f"schedulers that failed {root}: {marked}"
            dead = marked[0]
            survivor = next(s for s in SCHEDULERS if s != dead)
            cluster.stop_component(dead, sig=signal.SIGKILL)
            wait_for(lambda: ended(held[dead]), timeout=30, what=f"the retry worker of {dead} gone")
        finally:
            for worker in held.values():
                if not ended(worker):
                    worker.send_signal(signal.SIGCONT)

        first = wait_for_chain_run(cluster, dag, root, 1)
        assert cluster.wait_for_run(dag, first) == "success"
    assert f"retry {first} created" in cluster.log_since_start(survivor)
    assert chain_runs(cluster, dag, root) == {1: first}
    assert len(audit_entries(cluster, dag, root)) == 1
    assert ledger(dag) == ["first", "flaky", "flaky", "last"]


def ended(proc: psutil.Process) -> bool:
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def failed_marks(cluster: ClusterStack, scheduler: str) -> str:
    """The lines in which ``scheduler`` marked runs failed."""
    return "\n".join(
        line
        for line in cluster.log_since_start(scheduler).splitlines()
        if "Marking run" in line and "> failed [" in line
    )

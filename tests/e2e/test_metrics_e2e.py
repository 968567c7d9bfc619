"""
The provider's metrics as a StatsD server receives them from a real Airflow: its own stack (api-server,
scheduler, dag-processor) with ``[metrics] statsd_on`` pointing at a UDP socket of this test.

Each metric comes from the process that does the work: capture from the task runner, resumes from the
API server, retries from the scheduler's retry worker. Metric names carry Airflow's prefix ``airflow``.
"""

from __future__ import annotations

import socket
import threading

import pytest

from tests.e2e.runs import wait_for_chain_run
from tools.airflow_stack import AirflowStack, wait_for

pytestmark = pytest.mark.e2e

DAG = "resume_example_etl"
RESUME_API = "/resume/api/v1"


class StatsdListener:
    """A UDP socket on a free port, read by a thread into a list of datagram lines."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.lines: list[str] = []
        #: Where the current test's lines start: ``metrics`` reads only those.
        self.start = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="statsd-listener", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            self.lines.extend(data.decode(errors="replace").splitlines())

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()

    def forget(self) -> None:
        """Count from now on only: what earlier tests made the stack send is not the next test's."""
        self.start = len(self.lines)

    def metrics(self, name: str) -> list[str]:
        """The values sent for ``name`` (without the prefix) since ``forget``, e.g. ``["1|c", "1|c"]``."""
        prefix = f"airflow.{name}:"
        return [line[len(prefix) :] for line in self.lines[self.start :] if line.startswith(prefix)]

    def wait_for(self, name: str, count: int = 1, timeout: float = 60) -> list[str]:
        return wait_for(
            lambda: len(values := self.metrics(name)) >= count and values,
            timeout=timeout,
            interval=0.5,
            what=f"{count} x airflow.{name}",
        )


@pytest.fixture(scope="module")
def listener():
    listener = StatsdListener()
    try:
        yield listener
    finally:
        listener.stop()


@pytest.fixture
def statsd(listener):
    """The module's listener, counting only what is sent during the test."""
    listener.forget()
    return listener


@pytest.fixture(scope="module")
def metrics_stack(listener, backend, tmp_path_factory):
    """
    A stack of its own (local logs), sending Airflow's metrics, and the provider's, to ``listener``.

    Why not the shared stack: ``[metrics]`` is read by each component at start-up, so the shared
    stack would have to send metrics for every test, and its retry sweeps for other tests' DAGs
    would send counts into these tests' windows.
    """
    airflow = AirflowStack(
        home=tmp_path_factory.mktemp("airflow-metrics"),
        backend=backend,
        extra_env={
            "AIRFLOW__METRICS__STATSD_ON": "True",
            "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
            "AIRFLOW__METRICS__STATSD_PORT": str(listener.port),
            "AIRFLOW__METRICS__STATSD_PREFIX": "airflow",
        },
    )
    try:
        airflow.start()
        yield airflow
    finally:
        airflow.stop()


def counted(values: list[str]) -> int:
    return sum(int(v.split("|")[0]) for v in values if v.endswith("|c"))


def timed_ms(values: list[str]) -> list[float]:
    return [float(v.split("|")[0]) for v in values if v.endswith("|ms")]


# Release set: how the metrics client starts in each Airflow process differs by release.
@pytest.mark.release
def test_fail_resume_succeed_sends_capture_and_resume_metrics(metrics_stack, statsd):
    with metrics_stack.variables(resume_example_fail="true"):
        run_id = metrics_stack.trigger(DAG)
        assert metrics_stack.wait_for_run(DAG, run_id) == "failed"
        # extract and transform each recorded their state before running, in their task runner
        assert counted(statsd.wait_for("resume.capture.written", 2)) >= 2
        durations = timed_ms(statsd.wait_for("resume.capture.duration", 2))
        assert len(durations) >= 2 and all(0 < ms < 10_000 for ms in durations)

        metrics_stack.set_variable("resume_example_fail", "false")
        with metrics_stack.client() as c:
            resp = c.post(f"{RESUME_API}/dags/{DAG}/dagRuns/{run_id}/resume")
            assert resp.status_code == 201, resp.text
            new_run = resp.json()["dag_run_id"]
        assert counted(statsd.wait_for("resume.created")) == 1
        # plain StatsD drops tags: the kind is in the name as well
        assert counted(statsd.wait_for("resume.created.manual")) == 1
        assert statsd.metrics("resume.created.retry") == []
        (create_ms,) = timed_ms(statsd.wait_for("resume.create.duration"))
        assert 0 < create_ms < 30_000

        assert metrics_stack.wait_for_run(DAG, new_run) == "success"
    # transform and load ran in the resumed run and recorded their state too (extract was restored)
    assert counted(statsd.wait_for("resume.capture.written", 4)) == 4
    assert statsd.metrics("resume.capture.failed") == []

    # Resuming a run that succeeded is refused: counted with its reason code.
    with metrics_stack.client() as c:
        resp = c.post(f"{RESUME_API}/dags/{DAG}/dagRuns/{new_run}/resume")
        assert resp.status_code == 409, resp.text
    assert counted(statsd.wait_for("resume.refused")) == 1
    assert counted(statsd.wait_for("resume.refused.run_not_failed")) == 1


def test_a_state_file_that_cannot_be_written_counts_as_a_failed_capture(metrics_stack, statsd):
    run_id = "metrics_capture_blocked"
    # A folder where extract's state file must go: the write fails, the task goes on without it.
    blocker = (
        metrics_stack.logs
        / f"dag_id={DAG}"
        / f"run_id={run_id}"
        / "task_id=extract"
        / "attempt=1.resume.json"
    )
    blocker.mkdir(parents=True)
    metrics_stack.wait_for_dag(DAG)
    with metrics_stack.variables(resume_example_fail="true"):
        with metrics_stack.client() as c:
            resp = c.post(f"/api/v2/dags/{DAG}/dagRuns", json={"dag_run_id": run_id, "logical_date": None})
            assert resp.status_code == 200, resp.text
        assert metrics_stack.wait_for_run(DAG, run_id) == "failed"
    # extract's, and transform's, whose inputs are then not known either
    assert counted(statsd.wait_for("resume.capture.failed", 2)) == 2
    # The task itself is not affected: extract succeeded, transform failed by itself.
    tis = metrics_stack.task_instances(DAG, run_id)
    assert (tis["extract"]["state"], tis["transform"]["state"]) == ("success", "failed")
    # Airflow's own metrics reach the same socket: the provider sends through Airflow's client.
    assert any(line.startswith("airflow.scheduler_heartbeat:") for line in statsd.lines)


def test_automatic_retries_send_scheduled_and_not_retried(metrics_stack, statsd):
    dag = "resume_test_retry_one"  # one retry; its flaky task keeps failing
    root = metrics_stack.trigger(dag)
    assert metrics_stack.wait_for_run(dag, root) == "failed"
    assert counted(statsd.wait_for("resume.retry.scheduled", timeout=90)) == 1
    assert counted(statsd.wait_for("resume.created.retry")) == 1

    retry = wait_for_chain_run(metrics_stack, dag, root, 1, timeout=60)
    assert metrics_stack.wait_for_run(dag, retry) == "failed"
    # retries exhausted: written in the retry's note and counted once
    assert counted(statsd.wait_for("resume.retry.not_retried", timeout=90)) == 1
    assert "automatic retries exhausted (1 of 1)" in metrics_stack.note(dag, retry)
    assert counted(statsd.metrics("resume.retry.scheduled")) == 1

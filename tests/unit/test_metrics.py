"""
The provider's metrics as a StatsD server receives them: Airflow's own StatsD client, set up from
``[metrics]`` as Airflow sets it up, sending to a UDP socket of the test.

Both of Airflow's metrics clients are covered: the Task SDK's (capture, in the task runner) and
airflow-core's (resumes and retries, in the API server, the CLI and the retry worker).
"""

from __future__ import annotations

import logging
import socket

import pytest

from airflow_resume_provider import metrics

PREFIX = "airflow"


def _stats_modules():
    from airflow._shared.observability.metrics import stats as core
    from airflow.sdk._shared.observability.metrics import stats as sdk

    return core, sdk


@pytest.fixture
def statsd(monkeypatch):
    """A UDP socket Airflow's metrics go to; returns a function giving the datagrams received so far."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.5)
    for name, value in {
        "AIRFLOW__METRICS__STATSD_ON": "True",
        "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
        "AIRFLOW__METRICS__STATSD_PORT": str(sock.getsockname()[1]),
        "AIRFLOW__METRICS__STATSD_PREFIX": PREFIX,
    }.items():
        monkeypatch.setenv(name, value)
    for module in _stats_modules():
        # As if this process had not set up metrics yet: the provider sets them up from [metrics].
        monkeypatch.setattr(module, "_factory", None)
        monkeypatch.setattr(module, "_backend", None)
    received: list[str] = []

    def datagrams(expected: int) -> list[str]:
        """The provider's datagrams (Airflow sends its own too), once ``expected`` came or none for 0.5 s."""
        while len(received) < expected:
            try:
                lines = sock.recv(65536).decode().splitlines()
            except TimeoutError:
                break
            received.extend(line for line in lines if line.startswith(f"{PREFIX}.resume."))
        return received

    yield datagrams
    sock.close()


def test_counters_and_timers_of_the_task_runner(statsd):
    metrics.capture_written()
    metrics.capture_failed()
    metrics.capture_duration(0.0125)
    got = statsd(3)
    assert got[:2] == ["airflow.resume.capture.written:1|c", "airflow.resume.capture.failed:1|c"]
    assert got[2] == "airflow.resume.capture.duration:12.500000|ms"


def test_plain_statsd_gets_the_tag_value_appended_as_well(statsd):
    metrics.created("manual")
    metrics.created("retry")
    metrics.refused("state_expired")
    assert statsd(6) == [
        "airflow.resume.created:1|c",
        "airflow.resume.created.manual:1|c",
        "airflow.resume.created:1|c",
        "airflow.resume.created.retry:1|c",
        "airflow.resume.refused:1|c",
        "airflow.resume.refused.state_expired:1|c",
    ]


def test_statsd_with_influxdb_tags_gets_the_tag_and_no_suffix(statsd, monkeypatch):
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_INFLUXDB_ENABLED", "True")
    metrics.created("retry")
    metrics.refused("manual_kill")
    assert statsd(2) == [
        "airflow.resume.created,kind=retry:1|c",
        "airflow.resume.refused,reason_code=manual_kill:1|c",
    ]


def test_the_server_side_counters_and_timer(statsd):
    metrics.retry_scheduled("infrastructure")
    metrics.retry_not_retried("error")
    metrics.create_duration(0.25)
    assert statsd(5) == [
        "airflow.resume.retry.scheduled:1|c",
        "airflow.resume.retry.scheduled.infrastructure:1|c",
        "airflow.resume.retry.not_retried:1|c",
        "airflow.resume.retry.not_retried.error:1|c",
        "airflow.resume.create.duration:250.000000|ms",
    ]


def test_retry_counters_carry_the_failure_cause_as_a_tag(statsd, monkeypatch):
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_INFLUXDB_ENABLED", "True")
    metrics.retry_scheduled("timeout")
    metrics.retry_not_retried("unknown")
    assert statsd(2) == [
        "airflow.resume.retry.scheduled,cause=timeout:1|c",
        "airflow.resume.retry.not_retried,cause=unknown:1|c",
    ]


def test_a_broken_metrics_setup_never_raises_and_is_logged_once(statsd, monkeypatch, caplog):
    # Airflow refuses a custom client that is not a StatsClient when it creates the client.
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_CUSTOM_CLIENT_PATH", "socket.socket")
    monkeypatch.setattr(metrics, "_warned", False)
    with caplog.at_level(logging.DEBUG, logger="airflow_resume_provider.metrics"):
        metrics.created("manual")
        metrics.capture_written()
        metrics.create_duration(1.0)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "Could not send metric resume.created" in warnings[0].getMessage()
    assert "no impact on the task or run" in warnings[0].getMessage()
    assert statsd(1) == []


def test_tag_values_become_name_parts():
    assert metrics.tag_suffix("state_expired") == "state_expired"
    assert metrics.tag_suffix("a.b c") == "a_b_c"
    assert metrics.tag_suffix("") == "_"

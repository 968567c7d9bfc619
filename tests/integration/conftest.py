"""Fixtures shared by the integration tests."""

from __future__ import annotations

import functools

import pytest


@pytest.fixture(scope="session", autouse=True)
def one_in_process_execution_api():
    """
    Airflow 3.2's ``dag.test()`` builds a new in-process Execution API for every task it runs: a
    FastAPI app with versioned routes and an event-loop thread of its own, seconds of CPU each and a
    thread left behind. Airflow 3.3 builds it once per process (apache/airflow#65235); do the same on
    3.2, so that the suite's time goes to the provider. The API itself is the real one either way.
    """
    from airflow.sdk.execution_time import supervisor

    build = supervisor.in_process_api_server
    if not hasattr(build, "cache_info"):  # 3.3 and later cache it themselves
        supervisor.in_process_api_server = functools.lru_cache(maxsize=1)(build)
    yield
    supervisor.in_process_api_server = build


@pytest.fixture
def ledger(tmp_path, monkeypatch):
    path = tmp_path / "ledger.txt"
    monkeypatch.setenv("AIRFLOW_VAR_RESUME_TEST_LEDGER", str(path))

    def executed() -> list[str]:
        return path.read_text().split() if path.exists() else []

    return executed

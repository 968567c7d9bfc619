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


@pytest.fixture(scope="module")
def app():
    """The provider's FastAPI app with Airflow's auth manager (as the API server mounts it)."""
    from airflow.api_fastapi.app import init_auth_manager

    from airflow_resume_provider.api.app import create_app

    init_auth_manager()
    return create_app()


@pytest.fixture(scope="module")
def client(app):
    """A client of the app signed in as an admin (bearer token)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="admin", role="admin"))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        test_client.headers["Authorization"] = f"Bearer {token}"
        yield test_client

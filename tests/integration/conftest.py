"""Fixtures shared by the integration tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def ledger(tmp_path, monkeypatch):
    path = tmp_path / "ledger.txt"
    monkeypatch.setenv("AIRFLOW_VAR_RESUME_TEST_LEDGER", str(path))

    def executed() -> list[str]:
        return path.read_text().split() if path.exists() else []

    return executed

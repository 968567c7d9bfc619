"""The provider's own permission checks ask the auth manager about a DAG with the DAG's team."""

from __future__ import annotations

import pytest

TEAMS = {"own_dag": "team_a", "other_dag": "team_b"}


@pytest.fixture
def asked(monkeypatch):
    """What the auth manager was asked; it allows team A's DAGs and DAGs of no team only."""
    from airflow.models.dag import DagModel

    questions = []

    class TeamAuthManager:
        def is_authorized_dag(self, *, method, access_entity, details, user):
            questions.append((method, access_entity, details.id, details.team_name))
            return details.team_name in (None, "team_a")

    monkeypatch.setattr("airflow.api_fastapi.app.get_auth_manager", TeamAuthManager)
    monkeypatch.setattr(DagModel, "get_team_name", staticmethod(lambda dag_id, **_: TEAMS.get(dag_id)))
    return questions


def test_trigger_and_xcom_checks_pass_the_dags_team(asked):
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity

    from airflow_resume_provider.api.security import can_read_xcoms, can_trigger_runs

    user = object()
    assert can_trigger_runs("own_dag", user) is True
    assert can_trigger_runs("other_dag", user) is False
    assert can_read_xcoms("other_dag", user) is False
    assert can_trigger_runs("teamless_dag", user) is True
    assert asked == [
        ("POST", DagAccessEntity.RUN, "own_dag", "team_a"),
        ("POST", DagAccessEntity.RUN, "other_dag", "team_b"),
        ("GET", DagAccessEntity.XCOM, "other_dag", "team_b"),
        ("POST", DagAccessEntity.RUN, "teamless_dag", None),
    ]


def test_no_user_is_never_allowed_and_the_auth_manager_is_not_asked(asked):
    from airflow_resume_provider.api.security import can_read_xcoms, can_trigger_runs

    assert can_trigger_runs("own_dag", None) is False
    assert can_read_xcoms("own_dag", None) is False
    assert asked == []

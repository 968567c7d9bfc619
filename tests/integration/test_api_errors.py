"""
The REST API's answers to every error, in process: the provider's real app (Airflow's auth manager,
the metadata DB) under FastAPI's ``TestClient``. Each error of the provider maps to one status and one
``reason_code`` in one handler; the reason codes are an enum in the OpenAPI schema.
"""

from __future__ import annotations

import pytest

from tests.helpers import run_dag

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("airflow_db")]

API = "/api/v1"


@pytest.fixture(scope="module")
def failed_run():
    run = run_dag("resume_example_etl")
    assert run.state == "failed"
    return run.run_id


def test_the_reason_codes_are_an_enum_in_the_openapi_schema(client):
    from airflow_resume_provider.models import ReasonCode

    schema = client.get(f"{API}/openapi.json").json()
    codes = schema["components"]["schemas"]["ReasonCode"]
    assert codes["type"] == "string"
    assert codes["enum"] == [code.value for code in ReasonCode]
    assert {"signing_unavailable", "run_id_taken", "provider_config_invalid"} <= set(codes["enum"])
    verdict = schema["components"]["schemas"]["Verdict"]["properties"]["reason_code"]
    assert {"$ref": "#/components/schemas/ReasonCode"} in verdict["anyOf"]


def test_an_unknown_dag_or_run_is_404_run_not_found(client, failed_run):
    unknown_dag = client.get(f"{API}/dags/no_such_dag/dagRuns/{failed_run}")
    assert unknown_dag.status_code == 404
    assert unknown_dag.json() == {"detail": "DAG 'no_such_dag' not found.", "reason_code": "run_not_found"}
    unknown_run = client.post(f"{API}/dags/resume_example_etl/dagRuns/nope/resume")
    assert unknown_run.status_code == 404
    assert unknown_run.json()["reason_code"] == "run_not_found"


def test_a_refusal_is_409_with_the_verdicts_reason(client, failed_run, monkeypatch):
    monkeypatch.setenv("AIRFLOW__RESUME__STATE_FOLDER", "nosuch://bucket/state")
    refused = client.post(f"{API}/dags/resume_example_etl/dagRuns/{failed_run}/resume")
    assert refused.status_code == 409
    body = refused.json()
    assert body["reason_code"] == "provider_config_invalid"
    assert "[resume] state_folder = 'nosuch://bucket/state' is not valid" in body["detail"]


def test_a_bad_fallback_option_never_breaks_the_verdict(client, failed_run, monkeypatch):
    monkeypatch.setenv("AIRFLOW__RESUME__RETENTION_DAYS", "-1")
    monkeypatch.setenv("AIRFLOW__RESUME__CAPTURE_TIMEOUT", "abc")
    answer = client.get(f"{API}/dags/resume_example_etl/dagRuns/{failed_run}")
    assert answer.status_code == 200, answer.text
    verdict = answer.json()
    assert verdict["resumable"] is True
    assert [w.split(" = ")[0] for w in verdict["warnings"]] == [
        "[resume] capture_timeout",
        "[resume] retention_days",
    ]


def test_no_signing_secret_is_its_own_reason(client, failed_run, monkeypatch):
    from airflow_resume_provider import conf

    # The component's own [api_auth] jwt_secret also authenticates this request: only the provider's
    # read of it is emptied, as on a component where neither secret is set.
    monkeypatch.setenv("AIRFLOW__RESUME__SIGNING_KEY", "")
    monkeypatch.setattr(conf, "jwt_secret", lambda: b"")
    answer = client.get(f"{API}/dags/resume_example_etl/dagRuns/{failed_run}")
    assert answer.status_code == 200, answer.text
    verdict = answer.json()
    assert verdict["reason_code"] == "signing_unavailable"
    assert "Neither [resume] signing_key nor [api_auth] jwt_secret is set" in verdict["reason"]
    refused = client.post(f"{API}/dags/resume_example_etl/dagRuns/{failed_run}/resume")
    assert (refused.status_code, refused.json()["reason_code"]) == (409, "signing_unavailable")


def test_a_squatted_run_id_is_its_own_reason(client, monkeypatch):
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunType
    from sqlalchemy import select

    from airflow_resume_provider import run_record

    run = run_dag("resume_example_etl")
    reserved = run_record.resumed_run_id("resume_example_etl", run.run_id, run.run_id, 1)
    with create_session() as session:
        source = session.scalar(select(DagRun).where(DagRun.run_id == run.run_id))
        session.add(
            DagRun(
                dag_id="resume_example_etl",
                run_id=reserved,
                run_type=DagRunType.MANUAL,
                state=DagRunState.SUCCESS,
                conf={},
                logical_date=None,
                run_after=source.run_after,
                triggered_by=source.triggered_by,
            )
        )
    verdict = client.get(f"{API}/dags/resume_example_etl/dagRuns/{run.run_id}").json()
    assert verdict["reason_code"] == "run_id_taken"
    assert f"the run id {reserved!r} reserved for its resumed run is taken" in verdict["reason"]
    refused = client.post(f"{API}/dags/resume_example_etl/dagRuns/{run.run_id}/resume")
    assert (refused.status_code, refused.json()["reason_code"]) == (409, "run_id_taken")


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        ("RunNotFoundError", 404, "run_not_found"),
        ("ResumeConfigError", 422, "invalid_resume_config"),
        ("BadRequestError", 422, "bad_request"),
        ("RunIdTakenError", 409, "run_id_taken"),
        ("StateError", 409, "state_invalid"),
        ("StateMissingError", 409, "state_missing"),
        ("StateStorageError", 503, "state_unreachable"),
        ("SigningUnavailableError", 503, "signing_unavailable"),
        ("ProviderConfigError", 503, "provider_config_invalid"),
        ("ResumeError", 500, "resume_failed"),
    ],
)
def test_each_error_of_the_provider_maps_to_one_status_and_code(error, status, code):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from airflow_resume_provider import exceptions
    from airflow_resume_provider.api.app import install_error_handlers

    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    def boom():
        raise getattr(exceptions, error)(f"what went wrong, from {error}")

    answer = TestClient(app, raise_server_exceptions=False).get("/boom")
    assert answer.status_code == status
    assert answer.json() == {"detail": f"what went wrong, from {error}", "reason_code": code}
    assert answer.headers["X-Content-Type-Options"] == "nosniff"


def test_an_unexpected_error_is_a_500_that_hides_its_message():
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from airflow_resume_provider.api.app import install_error_handlers

    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    def boom():
        raise KeyError("/secret/path/inside")

    answer = TestClient(app, raise_server_exceptions=False).get("/boom")
    assert answer.status_code == 500
    assert answer.json() == {
        "detail": "Unexpected error: KeyError; see the API server's log.",
        "reason_code": "resume_failed",
    }


@pytest.mark.parametrize("moment", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59"])
@pytest.mark.parametrize("field", ["since", "until"])
def test_a_bulk_date_outside_airflows_range_is_422_naming_the_field(client, field, moment):
    answer = client.post(
        f"{API}/dags/resume_example_etl/dagRuns/resume",
        json={"state": "failed", field: moment, "dry_run": True},
    )
    assert answer.status_code == 422, answer.text
    errors = answer.json()["detail"]
    assert [(e["loc"], e["msg"]) for e in errors] == [
        (["body", field], "Value error, outside the times Airflow can store (years 1 to 9999, in UTC)")
    ]

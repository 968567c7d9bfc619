"""Resuming with changed inputs on a real metadata DB: validation, merge, masking, what tasks see."""

from __future__ import annotations

import json

import pytest

from tests.helpers import run_dag, run_existing_run, ti_states, unique_logical_date, xcom_value

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("airflow_db")]

DAG_ID = "resume_test_inputs"
EXAMPLE = "resume_example_inputs"


def _session():
    from airflow.utils.session import create_session

    return create_session(scoped=False)


def overrides(params=None, conf=None):
    from airflow_resume_provider.inputs import InputOverrides

    return InputOverrides(params=params or {}, conf=conf or {})


def resume(dag_id, run_id, params=None, conf=None, **kwargs):
    from airflow_resume_provider.resume import resume as _resume

    with _session() as session:
        return _resume(session, dag_id, run_id, user="tester", overrides=overrides(params, conf), **kwargs)


def preview(dag_id, run_id, params=None, conf=None):
    from airflow_resume_provider.resume import preview as _preview

    with _session() as session:
        return _preview(session, dag_id, run_id, overrides=overrides(params, conf))


def run_ids(dag_id):
    from airflow.models.dagrun import DagRun
    from sqlalchemy import select

    with _session() as session:
        return set(session.scalars(select(DagRun.run_id).where(DagRun.dag_id == dag_id)))


def note_of(dag_id, run_id):
    from airflow.models.dagrun import DagRun
    from sqlalchemy import select

    with _session() as session:
        run = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
        return run.note


def audit_extra(dag_id, run_id):
    from airflow.models.log import Log
    from sqlalchemy import select

    with _session() as session:
        rows = session.scalars(
            select(Log.extra).where(Log.event == "resume_created", Log.dag_id == dag_id, Log.run_id == run_id)
        ).all()
    assert len(rows) == 1, rows
    return json.loads(rows[0])


def test_a_run_failed_by_a_too_tight_param_is_fixed_by_changing_it():
    dr = run_dag(EXAMPLE, run_conf={"batch": "b1"})
    assert dr.state == "failed"
    before = run_ids(EXAMPLE)

    dry = preview(EXAMPLE, dr.run_id, params={"threshold": 20})
    assert dry.verdict.resumable, dry.verdict.reason
    assert dry.params["threshold"] == 20 and dry.params["region"] == "eu"
    assert [c.model_dump(mode="json") for c in dry.changes] == [
        {"param": "threshold", "from": 10, "to": 20, "source": "params"}
    ]
    assert run_ids(EXAMPLE) == before  # a dry run creates nothing

    outcome = resume(EXAMPLE, dr.run_id, params={"threshold": 20})
    assert outcome.created
    assert [c.model_dump(mode="json") for c in outcome.changes] == [
        {"param": "threshold", "from": 10, "to": 20, "source": "params"}
    ]
    assert note_of(EXAMPLE, outcome.dag_run_id) == (
        f"Resumed from {dr.run_id} at check; params changed: threshold 10 -> 20"
    )
    assert audit_extra(EXAMPLE, dr.run_id)["changes"] == [
        {"param": "threshold", "from": 10, "to": 20, "source": "params"}
    ]

    assert run_existing_run(EXAMPLE, outcome.dag_run_id) == "success"
    states = ti_states(EXAMPLE, outcome.dag_run_id)
    assert states["extract"] == ("success", 0)  # restored, not run again
    assert len(xcom_value(EXAMPLE, outcome.dag_run_id, "extract")) == 12  # its recorded XCom kept
    loaded = xcom_value(EXAMPLE, outcome.dag_run_id, "load")
    assert loaded["threshold"] == 20  # context["params"]
    assert loaded["where"] == "eu:20"  # templates
    assert loaded["conf"] == {"batch": "b1", "threshold": 20}  # dag_run.conf: the original conf, merged


def test_refused_inputs_are_422_naming_the_param_and_create_nothing(monkeypatch):
    from airflow_resume_provider.exceptions import InputChangesDisabledError, InputsInvalidError

    dr = run_dag(DAG_ID)
    assert dr.state == "failed"
    before = run_ids(DAG_ID)
    for params, conf, name, words in [
        ({"threshold": 0}, None, "threshold", "less than the minimum of 1"),
        ({"treshold": 20}, None, "treshold", "has no param 'treshold'"),
        ({"batch": 1}, None, "batch", "task-level param of task 'load'"),
        ({"mode": "loose"}, None, "mode", "is not one of"),
    ]:
        with pytest.raises(InputsInvalidError) as refused:
            resume(DAG_ID, dr.run_id, params, conf)
        assert refused.value.param == name and words in str(refused.value), str(refused.value)
        with pytest.raises(InputsInvalidError):
            preview(DAG_ID, dr.run_id, params, conf)
    monkeypatch.setenv("AIRFLOW__CORE__DAG_RUN_CONF_OVERRIDES_PARAMS", "False")
    with pytest.raises(InputChangesDisabledError):
        resume(DAG_ID, dr.run_id, {"threshold": 20})
    assert run_ids(DAG_ID) == before


def test_automatic_retries_and_full_reruns_never_change_inputs():
    from airflow_resume_provider.exceptions import BadRequestError

    dr = run_dag(DAG_ID)
    for kwargs in ({"kind": "retry"}, {"full_rerun": True}):
        with pytest.raises(BadRequestError, match="never change inputs"):
            resume(DAG_ID, dr.run_id, {"threshold": 20}, **kwargs)


def test_sensitive_values_are_masked_and_a_resumed_run_resumes_from_its_overridden_values(ledger):
    dr = run_dag(DAG_ID, logical_date=unique_logical_date())
    assert dr.state == "failed"
    ds = dr.logical_date.strftime("%Y-%m-%d")

    # Still too tight (12 rows): the resumed run fails at check again.
    first = resume(DAG_ID, dr.run_id, {"threshold": 11, "api_key": "new-secret-key"})
    shown = [c.model_dump(mode="json") for c in first.changes]
    assert shown == [
        {"param": "threshold", "from": 10, "to": 11, "source": "params"},
        {"param": "api_key", "from": "***", "to": "***", "source": "params"},
    ]
    note = note_of(DAG_ID, first.dag_run_id)
    assert note.endswith("params changed: threshold 10 -> 11, api_key *** -> ***")
    extra = json.dumps(audit_extra(DAG_ID, dr.run_id))
    for secret in ("new-secret-key", "original-key"):
        assert secret not in note and secret not in extra
    assert run_existing_run(DAG_ID, first.dag_run_id) == "failed"

    # The resumed run's params are the overridden ones: its resume starts from them.
    dry = preview(DAG_ID, first.dag_run_id)
    assert dry.params == {"threshold": 11, "api_key": "***", "mode": "strict"}
    second = resume(DAG_ID, first.dag_run_id, {"threshold": 12})
    assert [c.model_dump(mode="json") for c in second.changes] == [
        {"param": "threshold", "from": 11, "to": 12, "source": "params"}
    ]
    assert run_existing_run(DAG_ID, second.dag_run_id) == "success"
    assert ledger() == ["extract", "check", "check", "check", "load"]  # extract ran once
    loaded = xcom_value(DAG_ID, second.dag_run_id, "load")
    assert loaded["threshold"] == 12
    assert loaded["api_key"] == "new-secret-key"  # tasks get the real value
    assert loaded["batch"] == 5  # the task-level param as the task defines it
    assert loaded["rendered"] == f"12 strict {ds}"  # the original logical date kept
    assert loaded["conf"] == {"threshold": 12, "api_key": "new-secret-key"}


def test_a_resumed_run_is_returned_again_only_for_the_same_inputs():
    from airflow_resume_provider.exceptions import ResumedWithOtherInputsError

    dr = run_dag(DAG_ID)
    created = resume(DAG_ID, dr.run_id, {"threshold": 20}, {"region": "us"})
    again = resume(DAG_ID, dr.run_id, {"threshold": 20}, {"region": "us"})
    assert created.created and not again.created and again.dag_run_id == created.dag_run_id
    assert again.changes == created.changes
    plain = resume(DAG_ID, dr.run_id)  # a plain repeat: the run already created
    assert plain.dag_run_id == created.dag_run_id
    with pytest.raises(ResumedWithOtherInputsError, match="already resumed as"):
        resume(DAG_ID, dr.run_id, {"threshold": 30})
    with pytest.raises(ResumedWithOtherInputsError):
        preview(DAG_ID, dr.run_id, {"threshold": 30})  # a dry run answers what a resume would
    assert preview(DAG_ID, dr.run_id, {"threshold": 20}).verdict.resumed_run_id == created.dag_run_id


def test_changed_params_pass_the_params_check_that_the_original_values_fail(monkeypatch):
    """The params check applies to the merged values: a value today's schema refuses can be fixed."""
    from airflow_resume_provider import facts as facts_module

    dr = run_dag(DAG_ID)
    # Today's DAG refuses the original threshold (as if its minimum had been raised to 15).
    original = facts_module.params_problem
    monkeypatch.setattr(
        facts_module,
        "params_problem",
        lambda dag, conf, recorded: "Invalid input for param threshold: 10 is less than the minimum of 15",
    )
    dry = preview(DAG_ID, dr.run_id)
    assert dry.verdict.reason_code == "params_invalid"
    assert "resume with that param changed" in dry.verdict.reason
    monkeypatch.setattr(facts_module, "params_problem", original)
    assert preview(DAG_ID, dr.run_id, {"threshold": 20}).verdict.resumable


# --- the REST API, in process (Airflow's auth manager, the provider's app) ------------------------------


@pytest.fixture(scope="module")
def clients():
    from airflow.api_fastapi.app import get_auth_manager, init_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    from airflow_resume_provider.api.app import create_app

    init_auth_manager()
    app = create_app()
    found = {}
    with TestClient(app, raise_server_exceptions=False) as admin, TestClient(app) as viewer:
        for client, (name, role) in ((admin, ("admin", "admin")), (viewer, ("viewer", "viewer"))):
            token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username=name, role=role))
            client.headers["Authorization"] = f"Bearer {token}"
        found = {"admin": admin, "viewer": viewer}
        yield found


def url(run_id, dag_id=DAG_ID):
    from urllib.parse import quote

    return f"/api/v1/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/resume"


def test_rest_refusals_name_the_param_and_a_dry_run_needs_read_access_only(clients, monkeypatch):
    dr = run_dag(DAG_ID)
    before = run_ids(DAG_ID)
    admin, viewer = clients["admin"], clients["viewer"]

    bad = admin.post(url(dr.run_id), json={"params": {"threshold": "ten"}})
    assert bad.status_code == 422
    assert bad.json()["param"] == "threshold" and bad.json()["reason_code"] == "params_invalid"
    assert "'ten' is not of type 'integer'" in bad.json()["detail"]
    task_level = admin.post(url(dr.run_id), json={"params": {"batch": 2}, "dry_run": True})
    assert task_level.status_code == 422 and "task-level param" in task_level.json()["detail"]
    malformed = admin.post(url(dr.run_id), json={"params": ["threshold", 3]})
    assert malformed.status_code == 422

    dry = viewer.post(url(dr.run_id), json={"params": {"threshold": 20, "api_key": "k2"}, "dry_run": True})
    assert dry.status_code == 200, dry.text
    body = dry.json()
    assert body["dry_run"] is True and body["verdict"]["resumable"] is True
    assert body["params"] == {"threshold": 20, "api_key": "***", "mode": "strict"}
    assert body["changes"] == [
        {"param": "threshold", "from": 10, "to": 20, "source": "params"},
        {"param": "api_key", "from": "***", "to": "***", "source": "params"},
    ]
    refused = viewer.post(url(dr.run_id), json={"params": {"threshold": 20}})
    assert refused.status_code == 403 and "needs permission to trigger" in refused.json()["detail"]

    monkeypatch.setenv("AIRFLOW__CORE__DAG_RUN_CONF_OVERRIDES_PARAMS", "False")
    disabled = admin.post(url(dr.run_id), json={"params": {"threshold": 20}})
    assert disabled.status_code == 403
    assert disabled.json()["reason_code"] == "input_changes_disabled"
    assert "dag_run_conf_overrides_params is off" in disabled.json()["detail"]
    bulk = admin.post(
        f"/api/v1/dags/{DAG_ID}/dagRuns/resume", json={"dag_run_ids": [dr.run_id], "params": {"threshold": 2}}
    )
    assert bulk.status_code == 422 and "a bulk resume does not change inputs" in bulk.text
    assert run_ids(DAG_ID) == before

    monkeypatch.delenv("AIRFLOW__CORE__DAG_RUN_CONF_OVERRIDES_PARAMS")
    created = admin.post(url(dr.run_id), json={"params": {"threshold": 20}})
    assert created.status_code == 201, created.text
    assert created.json()["changes"] == [{"param": "threshold", "from": 10, "to": 20, "source": "params"}]
    other = admin.post(url(dr.run_id), json={"params": {"threshold": 30}})
    assert other.status_code == 409 and other.json()["reason_code"] == "resumed_with_other_inputs"


def test_the_openapi_schema_describes_the_request_and_the_dry_run(clients):
    schema = clients["admin"].get("/api/v1/openapi.json").json()
    parts = schema["components"]["schemas"]
    assert {"params", "conf", "dry_run"} <= set(parts["ResumeRequest"]["properties"])
    assert list(parts["InputChange"]["properties"]) == ["param", "from", "to", "source"]
    assert {"verdict", "params", "changes"} <= set(parts["ResumePreview"]["properties"])
    codes = parts["ReasonCode"]["enum"]
    assert {"input_changes_disabled", "resumed_with_other_inputs"} <= set(codes)


# --- the CLI, in process (Airflow's own parser and dispatch) ----------------------------------------------


def cli(capsys, *args):
    from airflow.cli.cli_parser import get_parser

    parsed = get_parser().parse_args(["resume", "run", *args])
    with pytest.raises(SystemExit) as exited:
        parsed.func(parsed)
    out = capsys.readouterr()
    return exited.value.code, out.out, out.err


def test_cli_changes_inputs_with_param_and_conf_and_dry_run_shows_the_diff(capsys):
    dr = run_dag(DAG_ID)
    before = run_ids(DAG_ID)

    code, out, _ = cli(capsys, DAG_ID, dr.run_id, "--param", "threshold=20", "--dry-run")
    assert code == 0
    assert "would resume at 'check'" in out and "threshold: 10 -> 20" in out and "Nothing created." in out
    assert "restored" in out  # the plan
    for args, words in [
        (("--param", "threshold=0"), "param 'threshold' refuses 0"),
        (("--param", "threshold"), "give NAME=VALUE"),
        (("--param", "batch=1"), "task-level param of task 'load'"),
        (("--conf", "[1]"), "--conf must be a JSON object"),
        (("--conf", "{nope"), "--conf is not JSON"),
    ]:
        code, _, err = cli(capsys, DAG_ID, dr.run_id, *args)
        assert code == 1 and words in err, (args, err)
    assert run_ids(DAG_ID) == before

    code, out, err = cli(
        capsys,
        DAG_ID,
        dr.run_id,
        "--param",
        "threshold=20",
        "--param",
        "mode=lenient",
        "--conf",
        '{"region": "us"}',
    )
    assert code == 0, err
    assert "Created run 'resume__" in out
    assert 'threshold: 10 -> 20\n  mode: "strict" -> "lenient"\n  region: null -> "us" (conf)' in out
    code, _, err = cli(capsys, DAG_ID, dr.run_id, "--param", "threshold=30")
    assert code == 3 and "already resumed as" in err

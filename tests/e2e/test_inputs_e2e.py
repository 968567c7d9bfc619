"""
Changed inputs against a real api-server, scheduler and dag-processor: a run that failed on a param set
too tight is fixed by resuming it with the param changed.

- refused inputs are 422 naming the param; a dry run (REST or CLI) shows the diff and creates nothing;
- a viewer may dry-run but not resume (403); with ``[core] dag_run_conf_overrides_params`` off the
  CLI refuses to change inputs (the same service refuses the REST API's request with 403: tested in
  process in ``tests/integration/test_inputs.py``, without restarting the shared api-server);
- the resumed run succeeds without running the earlier task again, its tasks see the new value, and
  its note and the audit row say what changed.
"""

from __future__ import annotations

import contextlib
import json

import pytest

from tests.e2e.runs import post_resume, resume_runs, resume_url, resumed, xcom_value

pytestmark = pytest.mark.e2e

DAG = "resume_example_inputs"
OFF = {"AIRFLOW__CORE__DAG_RUN_CONF_OVERRIDES_PARAMS": "False"}


@contextlib.contextmanager
def cli_with(stack, env):
    """The stack's CLI with ``env`` for the block (the running components keep theirs)."""
    saved = {key: stack.extra_env.get(key) for key in env}
    stack.extra_env.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                stack.extra_env.pop(key, None)
            else:
                stack.extra_env[key] = value


# Release set: a trigger's params validation (which a changed input goes through) differs by release.
@pytest.mark.release
def test_a_run_failed_by_a_too_tight_param_is_resumed_with_it_changed(stack):
    run_id = stack.trigger(DAG, conf={"batch": "b1"})
    assert stack.wait_for_run(DAG, run_id) == "failed"

    unknown = post_resume(stack, DAG, run_id, {"params": {"treshold": 20}})
    assert unknown.status_code == 422 and unknown.json()["param"] == "treshold", unknown.text
    too_low = post_resume(stack, DAG, run_id, {"params": {"threshold": 0}})
    assert too_low.status_code == 422 and "less than the minimum of 1" in too_low.json()["detail"]

    with stack.client("viewer") as viewer:
        dry = viewer.post(
            resume_url(DAG, run_id) + "/resume", json={"params": {"threshold": 20}, "dry_run": True}
        )
        refused = viewer.post(resume_url(DAG, run_id) + "/resume", json={"params": {"threshold": 20}})
    assert dry.status_code == 200, dry.text
    assert dry.json()["changes"] == [{"param": "threshold", "from": 10, "to": 20, "source": "params"}]
    assert refused.status_code == 403, refused.text

    cli_dry = stack.cli("resume", "run", DAG, run_id, "--param", "threshold=20", "--dry-run")
    assert "threshold: 10 -> 20" in cli_dry.stdout and "Nothing created." in cli_dry.stdout
    cli_bad = stack.cli("resume", "run", DAG, run_id, "--param", "region=mars", check=False)
    assert cli_bad.returncode == 1 and "param 'region'" in cli_bad.stderr, cli_bad.stderr
    with cli_with(stack, OFF):
        cli_off = stack.cli("resume", "run", DAG, run_id, "--param", "threshold=20", check=False)
    assert cli_off.returncode == 1 and "dag_run_conf_overrides_params is off" in cli_off.stderr, (
        cli_off.stderr
    )
    assert resume_runs(stack, DAG, run_id) == []  # nothing created by any of these

    new_run = resumed(stack, DAG, run_id, {"params": {"threshold": 20}})
    assert stack.wait_for_run(DAG, new_run) == "success"
    tis = stack.task_instances(DAG, new_run)
    assert (tis["extract"]["state"], tis["extract"]["try_number"]) == ("success", 0)  # not run again
    assert tis["check"]["try_number"] == 1
    loaded = xcom_value(stack, DAG, new_run, "load")
    assert (loaded["threshold"], loaded["where"]) == (20, "eu:20")
    assert loaded["conf"] == {"batch": "b1", "threshold": 20}
    assert stack.note(DAG, new_run) == f"Resumed from {run_id} at check; params changed: threshold 10 -> 20"
    with stack.client() as c:
        rows = c.get(
            "/api/v2/eventLogs", params={"event": "resume_created", "dag_id": DAG, "run_id": run_id}
        ).json()["event_logs"]
    assert len(rows) == 1 and rows[0]["owner"] == "admin"
    assert json.loads(rows[0]["extra"])["changes"] == [
        {"param": "threshold", "from": 10, "to": 20, "source": "params"}
    ]

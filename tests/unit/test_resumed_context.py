"""The task wrapper's logic: a resumed run's tasks see the original run's context, or do not run."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from airflow_resume_provider import resumed_context, run_record
from airflow_resume_provider.exceptions import ResumedContextError
from airflow_resume_provider.run_record import RunRecord

DAG_ID = "etl"
SOURCE = "manual__2026-02-03T04:05:00+00:00"
RESUMED = f"resume__{SOURCE}__1__0123456789"


def a_record(**overrides) -> RunRecord:
    values = dict(
        parent_run_id=SOURCE,
        root_run_id=SOURCE,
        resume_count=1,
        resumed_at_task_id="transform",
        logical_date="2026-02-03T04:05:00+00:00",
        data_interval_start="2026-02-02T04:05:00+00:00",
        data_interval_end="2026-02-03T04:05:00+00:00",
        params={"region": "us", "threshold": 10, "resume": True},
    )
    values.update(overrides)
    return RunRecord(**values)


def context(run_id: str, conf: dict, params: dict | None = None, task_params: dict | None = None) -> dict:
    dag_run = SimpleNamespace(
        conf=dict(conf), logical_date=None, data_interval_start=None, data_interval_end=None
    )
    return {
        "dag_run": dag_run,
        "ti": SimpleNamespace(dag_id=DAG_ID, run_id=run_id, task_id="transform"),
        "task": SimpleNamespace(params=task_params),
        "params": params if params is not None else {},
        "logical_date": None,
        "ds": None,
    }


def signed_conf(run_id: str, record: RunRecord, **conf) -> dict:
    return {**conf, "__resume__": run_record.sign(DAG_ID, run_id, record)}


def test_a_normal_run_is_left_alone():
    ctx = context(SOURCE, {"batch": 7}, params={"region": "eu"})
    resumed_context.apply(ctx)
    assert ctx["dag_run"].conf == {"batch": 7}
    assert ctx["params"] == {"region": "eu"}
    assert ctx["logical_date"] is None


def test_a_resumed_run_sees_the_original_dates_params_and_a_clean_conf():
    ctx = context(
        RESUMED, signed_conf(RESUMED, a_record(), batch=7), params={"region": "eu", "__resume__": {}}
    )
    resumed_context.apply(ctx)
    assert ctx["dag_run"].conf == {"batch": 7}  # the provider's record is not visible to the task
    assert ctx["ds"] == "2026-02-03"
    assert ctx["ts_nodash"] == "20260203T040500"
    assert ctx["logical_date"].isoformat() == "2026-02-03T04:05:00+00:00"
    assert ctx["data_interval_start"].isoformat() == "2026-02-02T04:05:00+00:00"
    assert ctx["dag_run"].logical_date == ctx["logical_date"]  # later contexts are built from the run
    assert ctx["params"] == {"region": "us", "threshold": 10}  # the original values; no bookkeeping
    assert resumed_context.record_for(DAG_ID, RESUMED) == a_record()


def test_the_runs_conf_and_the_tasks_own_params_keep_their_values():
    from airflow.sdk.definitions.param import ParamsDict

    task_params = ParamsDict({"threshold": 99})
    ctx = context(
        RESUMED,
        signed_conf(RESUMED, a_record(), region="ap"),
        params={"region": "ap", "threshold": 99},
        task_params=task_params,
    )
    resumed_context.apply(ctx)
    # region came with the run's conf (the same as the original's); threshold is a DAG param here
    # unless the task set it itself, which compat decides from the param's source.
    assert ctx["params"]["region"] == "ap"


def test_a_record_without_a_logical_date_keeps_the_runs_dates():
    ctx = context(RESUMED, signed_conf(RESUMED, a_record(logical_date=None)))
    resumed_context.apply(ctx)
    assert ctx["logical_date"] is None and ctx["ds"] is None
    assert ctx["params"] == {"region": "us", "threshold": 10}


def test_an_unsigned_entry_on_a_normal_run_is_ignored_and_said(caplog):
    forged = {"__resume__": {**a_record().model_dump(mode="json"), "signature": "0" * 64}}
    ctx = context(SOURCE, forged, params={"region": "eu"})
    with caplog.at_level(logging.WARNING):
        resumed_context.apply(ctx)
    assert ctx["params"] == {"region": "eu"} and ctx["logical_date"] is None
    assert any("did not write for this run" in r.getMessage() for r in caplog.records)


def test_a_run_that_looks_resumed_but_cannot_be_verified_does_not_run():
    copied = signed_conf(SOURCE, a_record())  # signed for another run
    with pytest.raises(
        ResumedContextError, match="looks like a resumed run, but its '__resume__' record cannot"
    ):
        resumed_context.apply(context(RESUMED, copied))


def test_a_record_whose_context_cannot_be_applied_stops_the_task():
    ctx = context(RESUMED, signed_conf(RESUMED, a_record(logical_date="not a date")))
    with pytest.raises(ResumedContextError, match="could not be presented to task 'transform'"):
        resumed_context.apply(ctx)


def test_the_wrapper_applies_the_context_before_rendering_the_tasks_copy():
    rendered = []

    class Task:
        params = None

        def render_template_fields(self, context, jinja_env=None):
            rendered.append((self, context["ds"]))

    parsed, running = Task(), Task()
    resumed_context.wrap_render_template_fields(parsed)
    ctx = context(RESUMED, signed_conf(RESUMED, a_record()))
    ctx["task"] = running
    parsed.render_template_fields(ctx)
    assert rendered == [(running, "2026-02-03")]

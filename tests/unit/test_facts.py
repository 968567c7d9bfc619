"""
Facts behind a verdict that need no database: what an audit-log row set to failed by hand, and whether
the DAG's current params still accept the original run's values.

Audit-log rows are built the way Airflow's API writes them (``action_logging``: the request body, as
JSON, in ``extra``). Params are checked on the serialized DAG, the form the verdict is given for.
"""

from __future__ import annotations

import json

import pytest
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, Param
from airflow.serialization.serialized_objects import DagSerialization

from airflow_resume_provider.facts import _failed_entities, _json_object, params_problem, shown

RUN_ID = "manual__2024-01-02T03:04:05+00:00"
OTHER_RUN = "manual__2024-01-03T00:00:00+00:00"


def audit_extra(body: dict, method: str = "PATCH") -> str:
    """``Log.extra`` as Airflow's ``action_logging`` writes it for a request with a JSON body."""
    return json.dumps({**body, "method": method})


def entities(event: str, extra, row_run_id: str | None = RUN_ID, row_task_id: str | None = None):
    return list(_failed_entities(event, _json_object(extra), row_run_id, row_task_id))


# --- what an audit-log row set to failed --------------------------------------------------------------


def test_a_task_instance_patched_to_failed():
    extra = audit_extra({"new_state": "failed", "note": None, "include_downstream": False})
    assert entities("patch_task_instance", extra, row_task_id="transform") == [(None, RUN_ID, "transform")]


@pytest.mark.parametrize(
    "body",
    [{"new_state": "success"}, {"new_state": "skipped"}, {"note": "looked at it"}, {"state": "failed"}],
    ids=["success", "skipped", "note-only", "run-key"],
)
def test_a_task_instance_patch_that_does_not_fail_it(body):
    assert entities("patch_task_instance", audit_extra(body), row_task_id="transform") == []


def test_a_run_patched_to_failed_concerns_the_whole_run():
    assert entities("patch_dag_run", audit_extra({"state": "failed"})) == [(None, RUN_ID, None)]
    assert entities("patch_dag_run", audit_extra({"state": "queued"})) == []
    assert entities("patch_dag_run", audit_extra({"note": "failed"})) == []


def test_bulk_task_instance_update_names_each_failed_task_of_each_run():
    extra = audit_extra(
        {
            "actions": [
                {
                    "action": "update",
                    "entities": [
                        {"task_id": "transform", "dag_run_id": RUN_ID, "new_state": "failed"},
                        {"task_id": "load", "dag_run_id": RUN_ID, "new_state": "success"},
                        {"task_id": "extract", "dag_run_id": OTHER_RUN, "new_state": "failed"},
                        {"task_id": "load", "new_state": "failed"},  # the run of the request's path
                    ],
                },
                {"action": "delete", "entities": ["transform", "load"]},
            ]
        }
    )
    assert entities("bulk_task_instances", extra, row_run_id="~") == [
        (None, RUN_ID, "transform"),
        (None, OTHER_RUN, "extract"),
        (None, "~", "load"),
    ]
    assert entities("bulk_task_instances", extra)[-1] == (None, RUN_ID, "load")


def test_bulk_run_update_names_each_run_set_to_failed():
    extra = audit_extra(
        {
            "actions": [
                {
                    "action": "update",
                    "entities": [
                        {"dag_run_id": RUN_ID, "state": "failed"},
                        {"dag_run_id": OTHER_RUN, "state": "success"},
                        {"dag_run_id": OTHER_RUN, "new_state": "failed"},  # not a run's field
                    ],
                }
            ]
        }
    )
    assert entities("bulk_dag_runs", extra, row_run_id=None) == [(None, RUN_ID, None)]


@pytest.mark.parametrize(
    "extra",
    [
        None,
        "",
        "not json",
        "[1, 2]",
        '"failed"',
        audit_extra({"actions": "failed"}),
        audit_extra({"actions": {"entities": [{"state": "failed"}]}}),
        audit_extra({"actions": [None, "x", 3, {"entities": None}, {"entities": "failed"}]}),
        audit_extra({"actions": [{"entities": [None, 1, ["failed"], {"state": None}]}]}),
    ],
    ids=[
        "none",
        "empty",
        "not-json",
        "list",
        "string",
        "actions-string",
        "actions-object",
        "bad-actions",
        "bad-entities",
    ],
)
def test_malformed_audit_log_extras_name_nothing(extra):
    for event in ("patch_task_instance", "patch_dag_run", "bulk_task_instances", "bulk_dag_runs"):
        assert entities(event, extra, row_task_id="transform") == []


@pytest.mark.parametrize(
    "extra",
    [audit_extra({"actions": 5}), audit_extra({"actions": [{"entities": 5}]})],
    ids=["actions-number", "entities-number"],
)
def test_a_rejected_bulk_request_logged_by_airflow_names_nothing(extra):
    # Airflow's action_logging writes the raw body even when the request then fails validation (422).
    assert entities("bulk_dag_runs", extra) == []


def test_an_audit_log_extra_already_parsed_is_used_as_is():
    assert _json_object({"state": "failed"}) == {"state": "failed"}
    assert entities("patch_dag_run", {"state": "failed"}) == [(None, RUN_ID, None)]


# --- whether the DAG's params still accept the original run's values ---------------------------------

ORIGINAL_PARAMS = {
    "resume": True,
    "day": Param("2024-01-01", type="string"),
    "mode": Param("incremental", enum=["incremental", "full"]),
    "limit": Param(100, type="integer", minimum=1),
}
#: The params the original run ran with, as its state file records them.
RECORDED = {"resume": True, "day": "2024-01-02", "mode": "full", "limit": 500}


def serialized_dag(params: dict):
    """The DAG as the verdict gets it: the latest serialized version."""
    with DAG("etl", schedule=None, params=params) as dag:
        EmptyOperator(task_id="extract") >> EmptyOperator(task_id="transform")
    return DagSerialization.from_dict(json.loads(json.dumps(DagSerialization.to_dict(dag))))


def test_unchanged_params_accept_the_original_values():
    assert params_problem(serialized_dag(ORIGINAL_PARAMS), {}, RECORDED) is None


def test_a_new_required_param_without_default_is_named():
    dag = serialized_dag({**ORIGINAL_PARAMS, "region": Param(type="string")})
    problem = params_problem(dag, {}, RECORDED)
    assert problem is not None
    assert "param region" in problem
    assert "No value passed" in problem


def test_an_enum_that_lost_the_original_value_is_named():
    dag = serialized_dag({**ORIGINAL_PARAMS, "mode": Param("incremental", enum=["incremental"])})
    assert params_problem(dag, {}, RECORDED) == (
        "Invalid input for param mode: 'full' is not one of ['incremental']"
    )


def test_a_narrowed_type_or_range_is_named():
    narrowed = {**ORIGINAL_PARAMS, "limit": Param(100, type="integer", maximum=200)}
    assert params_problem(serialized_dag(narrowed), {}, RECORDED) == (
        "Invalid input for param limit: 500 is greater than the maximum of 200"
    )
    retyped = {**ORIGINAL_PARAMS, "day": Param(1, type="integer")}
    assert params_problem(serialized_dag(retyped), {}, RECORDED) == (
        "Invalid input for param day: '2024-01-02' is not of type 'integer'"
    )


def test_a_new_param_with_a_default_is_fine():
    dag = serialized_dag({**ORIGINAL_PARAMS, "region": Param("eu", type="string", enum=["eu", "us"])})
    assert params_problem(dag, {}, RECORDED) is None


def test_a_removed_param_is_fine():
    current = {k: v for k, v in ORIGINAL_PARAMS.items() if k != "limit"}
    assert params_problem(serialized_dag(current), {}, RECORDED) is None


def test_the_original_runs_conf_is_checked_too():
    dag = serialized_dag({**ORIGINAL_PARAMS, "mode": Param("incremental", enum=["incremental"])})
    # The conf the run was triggered with overrides params, and is replayed: it must still be accepted.
    assert "param mode" in params_problem(dag, {"mode": "full"}, {"resume": True})
    # Conf keys that are not params need no schema.
    assert params_problem(serialized_dag(ORIGINAL_PARAMS), {"note": "backfill"}, RECORDED) is None


def test_the_resume_param_and_record_are_not_replayed():
    dag = serialized_dag({**ORIGINAL_PARAMS, "resume": Param(True, type="boolean")})
    recorded = {**RECORDED, "resume": "whatever it was", "__resume__": {"root_run_id": RUN_ID}}
    assert params_problem(dag, {}, recorded) is None


# --- values in messages -------------------------------------------------------------------------------


def test_user_values_are_quoted_and_bounded_in_messages():
    assert shown("nope") == "'nope'"
    assert shown(None) == "None"
    long = shown("x" * 5000)
    assert long == "'" + "x" * 99 + "… (5002 characters)"

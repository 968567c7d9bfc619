"""Changed inputs without a database: names, validation against the DAG's params, the diff, masking."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from airflow_resume_provider import inputs
from airflow_resume_provider.exceptions import InputChangesDisabledError, InputsInvalidError
from airflow_resume_provider.inputs import InputOverrides


def a_dag():
    from airflow.serialization.definitions.param import SerializedParam, SerializedParamsDict

    params = SerializedParamsDict(
        {
            "resume": SerializedParam(True, source="dag"),
            "threshold": SerializedParam(10, type="integer", minimum=1, source="dag"),
            "api_key": SerializedParam("original-key", type="string", source="dag"),
            "mode": SerializedParam("strict", enum=["strict", "lenient"], source="dag"),
        }
    )
    load = SimpleNamespace(
        task_id="load", params=SerializedParamsDict({"batch": SerializedParam(5, source="task")})
    )
    return SimpleNamespace(dag_id="etl", params=params, tasks=[load])


RECORDED = {"resume": True, "threshold": 10, "api_key": "original-key", "mode": "strict"}


def merge(params=None, conf=None, original_conf=None):
    return inputs.merge(
        a_dag(), RECORDED, original_conf or {}, InputOverrides(params=params or {}, conf=conf or {})
    )


def test_params_are_merged_over_the_recorded_values_and_reach_the_conf():
    merged = merge({"threshold": 20}, {"region": "us"}, original_conf={"batch_date": "2026-01-01"})
    # The whole conf overlays the params, as Airflow applies a run's conf.
    assert merged.params == {
        "threshold": 20,
        "api_key": "original-key",
        "mode": "strict",
        "region": "us",
        "batch_date": "2026-01-01",
    }
    assert merged.conf == {"batch_date": "2026-01-01", "region": "us", "threshold": 20}
    assert [c.model_dump(mode="json") for c in merged.changes] == [
        {"param": "threshold", "from": 10, "to": 20, "source": "params"},
        {"param": "region", "from": None, "to": "us", "source": "conf"},
    ]


def test_a_value_set_to_what_it_was_is_no_change():
    assert merge({"threshold": 10}).changes == []


@pytest.mark.parametrize(
    ("params", "conf", "name", "words"),
    [
        (
            {"nope": 1},
            {},
            "nope",
            "has no param 'nope' (its run-level params: 'threshold', 'api_key', 'mode')",
        ),
        ({"batch": 9}, {}, "batch", "'batch' is a task-level param of task 'load'"),
        ({}, {"batch": 9}, "batch", "only run-level params"),
        ({"resume": False}, {}, "resume", "the provider's own param"),
        ({}, {"__resume__": {}}, "__resume__", "the provider's own conf key"),
        ({"threshold": 0}, {}, "threshold", "param 'threshold' refuses 0: 0 is less than the minimum of 1"),
        ({"threshold": "ten"}, {}, "threshold", "'ten' is not of type 'integer'"),
        ({"mode": "loose"}, {}, "mode", "'loose' is not one of ['strict', 'lenient']"),
        ({}, {"threshold": -1}, "threshold", "refuses -1"),
        ({"threshold": 3}, {"threshold": 4}, "threshold", "given in both params and conf"),
    ],
)
def test_a_refused_input_is_named_with_why(params, conf, name, words):
    with pytest.raises(InputsInvalidError) as refused:
        merge(params, conf)
    assert refused.value.param == name
    assert words in str(refused.value)
    assert refused.value.status_code == 422


def test_a_refused_sensitive_value_is_not_echoed():
    dag = a_dag()
    dag.params.get_param("api_key").schema = {"type": "string", "minLength": 50}
    with pytest.raises(InputsInvalidError) as refused:
        inputs.merge(dag, RECORDED, {}, InputOverrides(params={"api_key": "new-secret-value"}))
    assert refused.value.param == "api_key"
    assert "new-secret-value" not in str(refused.value)
    assert 'refuses "***"' in str(refused.value)


def test_values_of_sensitive_names_are_masked_in_the_diff_and_the_note():
    merged = merge({"api_key": "new-secret-value", "threshold": 20})
    shown = [c.model_dump(mode="json") for c in merged.changes]
    assert shown[0] == {"param": "api_key", "from": "***", "to": "***", "source": "params"}
    assert merged.params["api_key"] == "new-secret-value"  # what the tasks get is the real value
    note = inputs.note_text("Resumed from r1 at check", merged.changes)
    assert note == "Resumed from r1 at check; params changed: api_key *** -> ***, threshold 10 -> 20"
    assert "new-secret-value" not in note and "original-key" not in note


def test_changing_inputs_is_refused_when_run_conf_may_not_set_params(monkeypatch):
    monkeypatch.setenv("AIRFLOW__CORE__DAG_RUN_CONF_OVERRIDES_PARAMS", "False")
    with pytest.raises(InputChangesDisabledError) as refused:
        merge({"threshold": 20})
    assert refused.value.status_code == 403
    assert "dag_run_conf_overrides_params is off" in str(refused.value)


def test_same_as_compares_the_requested_inputs_with_a_runs_conf():
    asked = InputOverrides(params={"threshold": 20}, conf={"region": "us"})
    assert inputs.same_as({"threshold": 20, "region": "us", "other": 1}, asked)
    assert not inputs.same_as({"threshold": 21, "region": "us"}, asked)
    assert not inputs.same_as({"region": "us"}, asked)
    # A param asked for with the value the run had anyway (not in its conf): the same inputs.
    assert inputs.same_as({}, InputOverrides(params={"threshold": 10}), {"threshold": 10})
    assert not inputs.same_as({}, InputOverrides(conf={"threshold": 10}), {"threshold": 10})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("threshold=3", ("threshold", 3)),
        ("ratio=0.5", ("ratio", 0.5)),
        ("strict=true", ("strict", True)),
        ("cols=[1, 2]", ("cols", [1, 2])),
        ('name="x y"', ("name", "x y")),
        ("path=/data/in", ("path", "/data/in")),
        ("expr=a=b", ("expr", "a=b")),
        ("empty=", ("empty", "")),
    ],
)
def test_cli_param_values_are_json_else_strings(text, expected):
    assert inputs.parse_param(text) == expected


@pytest.mark.parametrize("text", ["threshold", "=3", " =3"])
def test_cli_param_without_a_name_is_refused(text):
    with pytest.raises(ValueError, match="give NAME=VALUE"):
        inputs.parse_param(text)


def test_the_lineage_facet_lists_the_changed_inputs_masked():
    from airflow_resume_provider.lineage import facet_fields
    from airflow_resume_provider.run_record import RunRecord

    changes = merge({"api_key": "new-secret-value", "threshold": 20}).changes
    record = RunRecord(
        parent_run_id="r1", root_run_id="r1", resume_count=1, resumed_at_task_id="check", changes=changes
    )
    ti = SimpleNamespace(dag_id="etl", task_id="load", map_index=-1, task=None)
    fields = facet_fields(ti, record)
    assert fields["changedInputs"] == [
        {"param": "api_key", "from": "***", "to": "***", "source": "params"},
        {"param": "threshold", "from": 10, "to": 20, "source": "params"},
    ]
    unchanged = RunRecord(parent_run_id="r1", root_run_id="r1", resume_count=1, resumed_at_task_id="check")
    assert "changedInputs" not in facet_fields(ti, unchanged)


def test_the_changes_survive_the_signed_record():
    from airflow_resume_provider import run_record

    changes = merge({"threshold": 20}).changes
    record = run_record.RunRecord(parent_run_id="r1", root_run_id="r1", resume_count=1, changes=changes)
    signed = run_record.sign("etl", "resume__r1__1__x", record)
    assert signed["changes"] == [{"param": "threshold", "from": 10, "to": 20, "source": "params"}]
    assert run_record.check("etl", "resume__r1__1__x", {"__resume__": signed}).record.changes == changes

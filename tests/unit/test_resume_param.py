"""The per-DAG ``resume`` param: parsing, error messages, and reading it from real SDK DAGs."""

from __future__ import annotations

import pydantic
import pytest
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, Param

from airflow_resume_provider.exceptions import ResumeConfigError
from airflow_resume_provider.persisted import PARAM_NAME
from airflow_resume_provider.resume_param import (
    DISABLED,
    ResumeSettings,
    parse_settings,
    raw_param_value,
    settings_for,
)


def make_dag(dag_id: str, params: dict | None = None) -> DAG:
    with DAG(dag_id, schedule=None, params=params) as dag:
        EmptyOperator(task_id="only")
    return dag


def test_param_name_is_resume():
    # Persisted in users' DAG files.
    assert PARAM_NAME == "resume"


@pytest.mark.parametrize("value", [None, False])
def test_absent_or_false_disables(value):
    settings = parse_settings(value, dag_id="d")
    assert settings == DISABLED
    assert settings.enabled is False


def test_true_enables_with_defaults():
    assert parse_settings(True, dag_id="d") == ResumeSettings(
        enabled=True, retries=0, retry_delay=0, on_retry=False
    )


def test_empty_mapping_enables_with_defaults():
    assert parse_settings({}, dag_id="d") == ResumeSettings()
    assert parse_settings({}, dag_id="d").enabled is True


def test_mapping_sets_every_key():
    settings = parse_settings(
        {"enabled": True, "retries": 3, "retry_delay": 1.5, "on_retry": True}, dag_id="d"
    )
    assert (settings.enabled, settings.retries, settings.retry_delay, settings.on_retry) == (
        True,
        3,
        1.5,
        True,
    )


def test_mapping_can_disable():
    assert parse_settings({"enabled": False}, dag_id="d").enabled is False


@pytest.mark.parametrize(
    ("value", "shown"), [("yes", "str 'yes'"), (1, "int 1"), (["retries"], "list ['retries']")]
)
def test_non_mapping_value_is_refused_naming_dag_and_type(value, shown):
    with pytest.raises(ResumeConfigError) as exc:
        parse_settings(value, dag_id="my_dag")
    message = str(exc.value)
    assert "DAG 'my_dag'" in message
    assert "params['resume'] must be true, false or a mapping" in message
    assert (
        "enabled (bool), retries (int 0-100), retry_delay (seconds, 0 to 604800), on_retry (bool)" in message
    )
    assert f"got {shown}" in message


def test_unknown_key_is_named():
    with pytest.raises(ResumeConfigError) as exc:
        parse_settings({"retry": 2}, dag_id="my_dag")
    message = str(exc.value)
    assert "DAG 'my_dag'" in message
    assert "invalid params['resume']" in message
    assert "key 'retry': unknown key" in message
    assert (
        "Accepted keys: enabled (bool), retries (int 0-100), retry_delay (seconds, 0 to 604800), on_retry (bool)"
        in message
    )


@pytest.mark.parametrize(
    ("value", "key", "got"),
    [
        ({"retries": -1}, "retries", "-1"),
        ({"retries": 101}, "retries", "101"),
        ({"retries": True}, "retries", "True"),
        ({"retries": "2"}, "retries", "'2'"),
        ({"retries": 2.0}, "retries", "2.0"),
        ({"retry_delay": -0.5}, "retry_delay", "-0.5"),
        ({"retry_delay": 604800.5}, "retry_delay", "604800.5"),
        ({"retry_delay": float("inf")}, "retry_delay", "inf"),
        ({"retry_delay": float("nan")}, "retry_delay", "nan"),
        ({"enabled": "yes"}, "enabled", "'yes'"),
        ({"on_retry": 1}, "on_retry", "1"),
    ],
)
def test_invalid_value_names_key_and_value(value, key, got):
    with pytest.raises(ResumeConfigError) as exc:
        parse_settings(value, dag_id="my_dag")
    message = str(exc.value)
    assert "DAG 'my_dag'" in message
    assert f"key {key!r}:" in message
    assert f"(got {got})" in message


def test_retry_delay_of_up_to_one_week_is_accepted():
    assert parse_settings({"retry_delay": 604800.0}, dag_id="d").retry_delay == 604800.0


def test_every_problem_is_reported_at_once():
    with pytest.raises(ResumeConfigError) as exc:
        parse_settings({"retries": -1, "colour": "red"}, dag_id="d")
    message = str(exc.value)
    assert "key 'retries':" in message
    assert "key 'colour': unknown key" in message


def test_error_does_not_chain_pydantic_traceback():
    with pytest.raises(ResumeConfigError) as exc:
        parse_settings({"retries": -1}, dag_id="d")
    assert exc.value.__cause__ is None
    assert exc.value.__suppress_context__ is True


def test_settings_are_immutable():
    settings = parse_settings(True, dag_id="d")
    with pytest.raises(pydantic.ValidationError):
        settings.retries = 5


def test_raw_param_value_true_from_sdk_dag():
    assert raw_param_value(make_dag("resume_true", {"resume": True})) is True


def test_raw_param_value_mapping_from_sdk_dag():
    dag = make_dag("resume_mapping", {"resume": {"retries": 2, "on_retry": True}})
    assert raw_param_value(dag) == {"retries": 2, "on_retry": True}


def test_raw_param_value_from_param_object():
    dag = make_dag("resume_param_obj", {"resume": Param(True, type="boolean")})
    assert raw_param_value(dag) is True


def test_raw_param_value_absent():
    assert raw_param_value(make_dag("resume_absent")) is None
    assert raw_param_value(make_dag("resume_other", {"other": 1})) is None


def test_settings_for_reads_a_real_dag():
    dag = make_dag("resume_settings_for", {"resume": {"retries": 4, "retry_delay": 2}})
    assert settings_for(dag) == ResumeSettings(retries=4, retry_delay=2)
    assert settings_for(make_dag("resume_settings_for_absent")) == DISABLED


def test_settings_for_names_the_dag_when_invalid():
    dag = make_dag("resume_bad_dag", {"resume": {"retries": "many"}})
    with pytest.raises(ResumeConfigError, match=r"DAG 'resume_bad_dag'.*key 'retries'"):
        settings_for(dag)


def test_retry_filters_are_validated():
    settings = parse_settings(
        {"retries": 1, "retry_exceptions": ["TimeoutError"], "retry_message_pattern": "temporar(y|ily)"},
        dag_id="d",
    )
    assert settings.retry_exceptions == ["TimeoutError"]
    assert settings.stop_on_repeated_error is True
    with pytest.raises(
        ResumeConfigError, match=r"key 'retry_message_pattern': .*not a valid regular expression"
    ):
        parse_settings({"retry_message_pattern": "(unclosed"}, dag_id="d")
    with pytest.raises(ResumeConfigError, match=r"key 'retry_exceptions'"):
        parse_settings({"retry_exceptions": "TimeoutError"}, dag_id="d")


def test_carry_task_state_is_on_by_default_and_can_be_turned_off():
    assert parse_settings(True, dag_id="d").carry_task_state is True
    assert parse_settings({}, dag_id="d").carry_task_state is True
    assert parse_settings({"carry_task_state": False}, dag_id="d").carry_task_state is False
    dag = make_dag("resume_no_carry", {"resume": {"carry_task_state": False}})
    assert settings_for(dag).carry_task_state is False


@pytest.mark.parametrize(("value", "got"), [("false", "'false'"), (0, "0"), (None, "None")])
def test_carry_task_state_accepts_only_a_bool(value, got):
    with pytest.raises(ResumeConfigError) as exc:
        parse_settings({"carry_task_state": value}, dag_id="my_dag")
    message = str(exc.value)
    assert "DAG 'my_dag'" in message
    assert f"key 'carry_task_state': Input should be a valid boolean (got {got})" in message
    assert "carry_task_state (bool)" in message  # named among the accepted keys


def test_retry_on_is_every_cause_by_default_and_can_be_narrowed():
    assert parse_settings(True, dag_id="d").retry_on == ["infrastructure", "timeout", "error"]
    assert parse_settings({"retry_on": ["infrastructure"]}, dag_id="d").retry_on == ["infrastructure"]
    dag = make_dag("resume_retry_on", {"resume": {"retries": 2, "retry_on": ["infrastructure", "timeout"]}})
    assert settings_for(dag).retry_on == ["infrastructure", "timeout"]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (["oom"], "Input should be 'infrastructure', 'timeout' or 'error' (got 'oom')"),
        (["Error"], "Input should be 'infrastructure', 'timeout' or 'error' (got 'Error')"),
        ("error", "Input should be a valid list (got 'error')"),
        ([], "List should have at least 1 item after validation, not 0 (got [])"),
    ],
)
def test_retry_on_accepts_only_a_list_of_causes(value, problem):
    with pytest.raises(ResumeConfigError) as exc:
        parse_settings({"retry_on": value}, dag_id="my_dag")
    message = str(exc.value)
    assert "DAG 'my_dag'" in message
    assert f"key 'retry_on': {problem}" in message
    assert "retry_on (list of failure causes: 'infrastructure', 'timeout', 'error')" in message

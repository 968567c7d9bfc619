"""The ``[resume]`` options as read by the provider, and the provider metadata that declares them."""

from __future__ import annotations

import json
import os
from importlib.metadata import distribution, entry_points
from pathlib import Path

import airflow
import jsonschema
import pytest

from airflow_resume_provider import __version__, conf
from airflow_resume_provider.exceptions import ProviderConfigError
from airflow_resume_provider.get_provider_info import CONFIG_OPTIONS, SECTION, get_provider_info

CONFIG_VARS = [
    "AIRFLOW__RESUME__STATE_FOLDER",
    "AIRFLOW__RESUME__STATE_CONN_ID",
    "AIRFLOW__RESUME__SIGNING_KEY",
    "AIRFLOW__RESUME__SIGNING_KEY_CMD",
    "AIRFLOW__RESUME__CAPTURE_TIMEOUT",
    "AIRFLOW__RESUME__RETRY_SWEEP_INTERVAL",
    "AIRFLOW__RESUME__RETRY_SWEEP_LOOKBACK",
    "AIRFLOW__RESUME__RETENTION_DAYS",
    "AIRFLOW__LOGGING__REMOTE_LOGGING",
    "AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER",
    "AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID",
    "AIRFLOW__LOGGING__LOG_FILENAME_TEMPLATE",
]
OPTIONS = {
    "state_folder",
    "state_conn_id",
    "signing_key",
    "capture_timeout",
    "retry_sweep_interval",
    "retry_sweep_lookback",
    "retention_days",
}


@pytest.fixture(autouse=True)
def clean_config(monkeypatch):
    for name in CONFIG_VARS:
        monkeypatch.delenv(name, raising=False)


# --- reading the options -----------------------------------------------------------------------------


def test_defaults():
    assert conf.state_folder() == ""
    assert conf.state_conn_id() == ""
    assert conf.signing_key() == b""
    assert conf.capture_timeout() == 10.0


def test_state_folder_and_conn_id_are_stripped(monkeypatch):
    monkeypatch.setenv("AIRFLOW__RESUME__STATE_FOLDER", "  s3://bucket/state  ")
    monkeypatch.setenv("AIRFLOW__RESUME__STATE_CONN_ID", " aws_state ")
    assert conf.state_folder() == "s3://bucket/state"
    assert conf.state_conn_id() == "aws_state"


def test_signing_key_is_utf8_bytes(monkeypatch):
    monkeypatch.setenv("AIRFLOW__RESUME__SIGNING_KEY", "clé-secrète")
    assert conf.signing_key() == "clé-secrète".encode()


def test_a_signing_key_from_a_command_is_the_same_key_as_the_plain_one(monkeypatch):
    # ``_CMD`` output ends with a newline; the same key set plainly on another component must match.
    monkeypatch.setenv("AIRFLOW__RESUME__SIGNING_KEY_CMD", "printf 'k3y-value\\n'")
    assert conf.signing_key() == b"k3y-value"


@pytest.mark.parametrize(("raw", "value"), [("2.5", 2.5), ("30", 30.0), (" 1 ", 1.0), ("0.01", 0.01)])
def test_capture_timeout_reads_seconds(monkeypatch, raw, value):
    monkeypatch.setenv("AIRFLOW__RESUME__CAPTURE_TIMEOUT", raw)
    assert conf.capture_timeout() == value


SECONDS_ACCEPTED = "a number of seconds greater than 0 is accepted"


@pytest.mark.parametrize("option", ["capture_timeout", "retry_sweep_interval", "retry_sweep_lookback"])
@pytest.mark.parametrize("raw", ["abc", "10s", "", "1,5", "0", "-1", "-0.5", "0.0", "nan", "inf", "-inf"])
def test_a_bad_number_of_seconds_falls_back_to_the_default_and_is_reported_once(
    monkeypatch, caplog, option, raw
):
    monkeypatch.setenv(f"AIRFLOW__RESUME__{option.upper()}", raw)
    default = CONFIG_OPTIONS[option]["default"]
    assert getattr(conf, option)() == float(default)  # never raises where it is used
    assert getattr(conf, option)() == float(default)
    expected = (
        f"[resume] {option} = {raw!r} is not valid: {SECONDS_ACCEPTED}; the default {default} is used instead"
    )
    assert [str(p) for p in conf.problems()] == [expected]
    assert conf.warnings() == [expected]
    assert [r.getMessage() for r in caplog.records if "is not valid" in r.getMessage()] in ([expected], [])


def test_each_problem_is_logged_once_per_process(monkeypatch, caplog):
    monkeypatch.setenv("AIRFLOW__RESUME__RETRY_SWEEP_INTERVAL", "0 # once")
    for _ in range(3):
        assert conf.retry_sweep_interval() == 60.0
        conf.log_problems()
    logged = [r for r in caplog.records if "retry_sweep_interval" in r.getMessage()]
    assert len(logged) == 1 and logged[0].levelname == "WARNING"


@pytest.mark.parametrize("raw", ["-1", "abc", "1.5", "", "30d", "36501", "3000000"])
def test_a_bad_retention_falls_back_to_30_days_with_a_warning(monkeypatch, raw):
    monkeypatch.setenv("AIRFLOW__RESUME__RETENTION_DAYS", raw)
    assert conf.retention_days() == 30
    problem = conf.problem("retention_days")
    assert problem is not None and not problem.protected
    assert conf.warnings() == [
        f"[resume] retention_days = {raw!r} is not valid: a whole number of days from 0 (keep state forever) "
        "to 36500 is accepted; the default 30 is used instead"
    ]


@pytest.mark.parametrize("folder", ["nosuch://bucket/state", "cloudwatchx://group"])
def test_a_state_folder_on_an_unknown_storage_makes_its_users_refuse_naming_the_option(monkeypatch, folder):
    monkeypatch.setenv("AIRFLOW__RESUME__STATE_FOLDER", folder)
    with pytest.raises(ProviderConfigError) as refused:
        conf.state_folder()
    scheme = folder.partition("://")[0]
    assert str(refused.value).startswith(
        f"[resume] state_folder = {folder!r} is not valid: {scheme!r} is not"
    )
    assert "the features that need it refuse until it is fixed" in str(refused.value)
    assert refused.value.reason_code == "provider_config_invalid"
    assert conf.warnings() == []  # not a fallback: it refuses
    assert [p.option for p in conf.problems()] == ["state_folder"]


def test_a_connection_id_with_spaces_refuses(monkeypatch):
    monkeypatch.setenv("AIRFLOW__RESUME__STATE_CONN_ID", "aws default")
    with pytest.raises(ProviderConfigError, match=r"\[resume\] state_conn_id = 'aws default' is not valid"):
        conf.state_conn_id()


def test_a_signing_key_that_cannot_be_read_refuses_and_is_never_shown(monkeypatch):
    monkeypatch.setenv("AIRFLOW__RESUME__SIGNING_KEY_CMD", "exit 3")
    monkeypatch.delenv("AIRFLOW__RESUME__SIGNING_KEY", raising=False)
    with pytest.raises(ProviderConfigError) as refused:
        conf.signing_key()
    assert str(refused.value).startswith(
        "[resume] signing_key = '(unreadable)' is not valid: Airflow could not"
    )
    # Nothing signs with another secret instead: the run records are unavailable too.
    assert conf.run_record_secret() == b""


def test_every_problem_is_listed_in_declaration_order(monkeypatch):
    monkeypatch.setenv("AIRFLOW__RESUME__RETENTION_DAYS", "-1")
    monkeypatch.setenv("AIRFLOW__RESUME__CAPTURE_TIMEOUT", "abc")
    monkeypatch.setenv("AIRFLOW__RESUME__STATE_FOLDER", "nosuch://x")
    assert [p.option for p in conf.problems()] == ["state_folder", "capture_timeout", "retention_days"]
    assert [w.split(" = ")[0] for w in conf.warnings()] == [
        "[resume] capture_timeout",
        "[resume] retention_days",
    ]


def test_logging_folder_local_by_default():
    assert conf.logging_folder() == (os.environ["AIRFLOW__LOGGING__BASE_LOG_FOLDER"], "")


def test_logging_folder_remote_when_remote_logging_on(monkeypatch):
    monkeypatch.setenv("AIRFLOW__LOGGING__REMOTE_LOGGING", "True")
    monkeypatch.setenv("AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER", "s3://logs/airflow")
    monkeypatch.setenv("AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID", "aws_logs")
    assert conf.logging_folder() == ("s3://logs/airflow", "aws_logs")


def test_logging_folder_ignores_remote_folder_when_remote_logging_off(monkeypatch):
    monkeypatch.setenv("AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER", "s3://logs/airflow")
    monkeypatch.setenv("AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID", "aws_logs")
    assert conf.logging_folder() == (os.environ["AIRFLOW__LOGGING__BASE_LOG_FOLDER"], "")


def test_log_filename_template_follows_airflow(monkeypatch):
    from airflow.configuration import conf as airflow_conf

    assert conf.log_filename_template() == airflow_conf.get_default_value("logging", "log_filename_template")
    monkeypatch.setenv("AIRFLOW__LOGGING__LOG_FILENAME_TEMPLATE", "{dag_id}/{try_number}.log")
    assert conf.log_filename_template() == "{dag_id}/{try_number}.log"


# --- provider metadata -------------------------------------------------------------------------------


def test_config_section_lists_every_option_documented():
    section = get_provider_info()["config"][SECTION]
    assert SECTION == "resume"
    assert section["description"].strip()
    assert set(section["options"]) == OPTIONS
    for name, option in section["options"].items():
        for field in ("description", "type", "default", "example", "version_added"):
            assert field in option, f"{name} lacks {field}"
        assert option["description"].strip(), name
        assert option["type"] in {"string", "float", "integer", "boolean"}, name
        assert isinstance(option["default"], str), name
        assert isinstance(option["example"], str) and option["example"], name


def test_capture_timeout_default_and_example_are_valid_values(monkeypatch):
    for raw in (CONFIG_OPTIONS["capture_timeout"]["default"], CONFIG_OPTIONS["capture_timeout"]["example"]):
        monkeypatch.setenv("AIRFLOW__RESUME__CAPTURE_TIMEOUT", raw)
        assert conf.capture_timeout() == float(raw)


def test_signing_key_is_sensitive():
    from airflow.configuration import conf as airflow_conf

    assert CONFIG_OPTIONS["signing_key"]["sensitive"] is True
    assert ("resume", "signing_key") in airflow_conf.sensitive_config_values


def test_provider_info_validates_against_airflow_schema():
    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)


def test_provider_info_names_the_package_and_version():
    info = get_provider_info()
    assert info["package-name"] == "airflow-resume-provider"
    assert info["versions"] == [__version__]
    assert distribution("airflow-resume-provider").version == __version__


def test_provider_is_registered_and_its_config_known_to_airflow():
    from airflow.configuration import conf as airflow_conf
    from airflow.providers_manager import ProvidersManager

    values = {ep.value for ep in entry_points(group="apache_airflow_provider")}
    assert "airflow_resume_provider.get_provider_info:get_provider_info" in values
    assert dict(ProvidersManager().provider_configs)["airflow-resume-provider"] == {
        SECTION: get_provider_info()["config"][SECTION]
    }
    for name, option in CONFIG_OPTIONS.items():
        assert airflow_conf.get_default_value(SECTION, name) == option["default"], name


def test_retention_days_defaults_to_30_and_reads_whole_days(monkeypatch):
    assert conf.retention_days() == 30
    for raw, value in (("0", 0), ("90", 90), (" 7 ", 7), (CONFIG_OPTIONS["retention_days"]["example"], 90)):
        monkeypatch.setenv("AIRFLOW__RESUME__RETENTION_DAYS", raw)
        assert conf.retention_days() == value

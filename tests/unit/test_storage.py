"""State files: encoding, verification on read, atomic local writes, and where they are stored."""

from __future__ import annotations

import json
import os
import re

import pytest

from airflow_resume_provider.exceptions import StateError, StateStorageError
from airflow_resume_provider.state import integrity
from airflow_resume_provider.state.model import (
    SCHEMA_VERSION,
    Inputs,
    StateRecord,
    StructureSnapshot,
    TaskIdentity,
    XComEntry,
)
from airflow_resume_provider.state.paths import StateLocation, StateRoot, folder_url
from airflow_resume_provider.state.storage import (
    configured_folder,
    decode,
    encode,
    load,
    location_for,
    prepare,
    read_bytes,
    roots,
    write_bytes,
)

KEY = b"signing-key"
WHERE = "file:///logs/dag_id=etl/attempt=1.resume.json"
CONFIG_VARS = [
    "AIRFLOW__RESUME__STATE_FOLDER",
    "AIRFLOW__RESUME__STATE_CONN_ID",
    "AIRFLOW__RESUME__SIGNING_KEY",
    "AIRFLOW__LOGGING__REMOTE_LOGGING",
    "AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER",
    "AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID",
    "AIRFLOW__LOGGING__LOG_FILENAME_TEMPLATE",
]


@pytest.fixture(autouse=True)
def clean_config(monkeypatch):
    for name in CONFIG_VARS:
        monkeypatch.delenv(name, raising=False)


def record() -> StateRecord:
    return StateRecord(
        written_at="2024-01-02T03:04:05+00:00",
        identity=TaskIdentity(dag_id="etl", run_id="r1", task_id="transform", try_number=1),
        structure=StructureSnapshot(
            tasks=[("extract", "BashOperator"), ("transform", "EmptyOperator")], hash="h"
        ),
        inputs=Inputs(
            upstream_task_id="extract",
            xcoms=[XComEntry(task_id="extract", key="return_value", value=[{"id": 1, "name": "Zoë"}])],
            conf={"day": "2024-01-01"},
        ),
    )


def test_encode_decode_roundtrip_without_key():
    data, digest = encode(record(), b"")
    decoded, decoded_digest = decode(data, b"", where=WHERE)
    assert decoded_digest == digest
    assert decoded.integrity is not None
    assert decoded.integrity.algorithm == "sha256"
    assert decoded.model_dump(exclude={"integrity"}) == record().model_dump(exclude={"integrity"})


def test_encode_decode_roundtrip_with_key():
    data, digest = encode(record(), KEY)
    decoded, decoded_digest = decode(data, KEY, where=WHERE)
    assert decoded_digest == digest
    assert decoded.integrity.algorithm == "hmac-sha256"
    assert decoded.inputs.xcoms[0].value == [{"id": 1, "name": "Zoë"}]


def test_encoded_file_is_json_with_schema_version_and_integrity():
    document = json.loads(encode(record(), b"")[0])
    assert document["schema_version"] == SCHEMA_VERSION
    assert set(document["integrity"]) == {"algorithm", "digest"}
    assert document["identity"]["dag_id"] == "etl"


def test_encode_replaces_a_stale_integrity_block():
    first, _ = decode(encode(record(), b"")[0], b"", where=WHERE)
    data, _ = encode(first, KEY)  # re-encoding a read record signs it afresh
    assert decode(data, KEY, where=WHERE)[0].integrity.algorithm == "hmac-sha256"


def test_unknown_fields_from_newer_writer_survive_roundtrip():
    document = json.loads(encode(record(), b"")[0])
    document["future_field"] = {"x": 1}
    document["inputs"]["future_input"] = 2
    document["integrity"] = integrity.compute(document, b"")
    decoded, _ = decode(json.dumps(document).encode(), b"", where=WHERE)
    again = json.loads(encode(decoded, b"")[0])
    assert again["future_field"] == {"x": 1}
    assert again["inputs"]["future_input"] == 2


def test_tampered_file_is_refused():
    data, _ = encode(record(), b"")
    tampered = data.replace(b'"day":"2024-01-01"', b'"day":"2024-12-31"')
    assert tampered != data
    with pytest.raises(StateError, match=re.escape(f"State file {WHERE} failed its integrity check")):
        decode(tampered, b"", where=WHERE)


def test_tampered_signed_file_is_refused():
    document = json.loads(encode(record(), KEY)[0])
    document["inputs"]["xcoms"][0]["value"] = "injected"
    with pytest.raises(StateError, match="failed its integrity check"):
        decode(json.dumps(document).encode(), KEY, where=WHERE)


def test_signed_file_is_refused_without_key():
    data, _ = encode(record(), KEY)
    with pytest.raises(StateError, match=r"is signed, but \[resume\] signing_key is not set"):
        decode(data, b"", where=WHERE)


def test_unsigned_file_is_refused_when_key_is_set():
    data, _ = encode(record(), b"")
    with pytest.raises(StateError, match=r"is not signed, but \[resume\] signing_key is set"):
        decode(data, KEY, where=WHERE)


def test_file_signed_with_other_key_is_refused():
    data, _ = encode(record(), b"other")
    with pytest.raises(StateError, match="signed with another key"):
        decode(data, KEY, where=WHERE)


def test_newer_schema_version_is_refused_with_upgrade_message():
    document = json.loads(encode(record(), b"")[0])
    document["schema_version"] = SCHEMA_VERSION + 1
    document["integrity"] = integrity.compute(document, b"")
    with pytest.raises(StateError) as exc:
        decode(json.dumps(document).encode(), b"", where=WHERE)
    message = str(exc.value)
    assert f"State file {WHERE} has schema version {SCHEMA_VERSION + 1}" in message
    assert f"newer than this provider reads ({SCHEMA_VERSION})" in message
    assert "upgrade airflow-resume-provider" in message


@pytest.mark.parametrize("version", [None, 0, -1, "1", 1.0])
def test_invalid_schema_version_is_refused(version):
    document = json.loads(encode(record(), b"")[0])
    if version is None:
        del document["schema_version"]
    else:
        document["schema_version"] = version
    document["integrity"] = integrity.compute(document, b"")
    with pytest.raises(StateError, match="has no valid schema_version; it is corrupt"):
        decode(json.dumps(document).encode(), b"", where=WHERE)


@pytest.mark.parametrize("data", [b"", b"{not json", b'{"a": 1', b"\xff\xfe\x00garbage"])
def test_non_json_is_refused_as_corrupt(data):
    with pytest.raises(StateError, match=re.escape(f"State file {WHERE} is not valid JSON")):
        decode(data, b"", where=WHERE)


@pytest.mark.parametrize("data", [b"[]", b"1", b'"text"', b"null"])
def test_non_object_is_refused_as_corrupt(data):
    with pytest.raises(StateError, match="does not hold a JSON object"):
        decode(data, b"", where=WHERE)


def test_decode_errors_are_not_chained():
    with pytest.raises(StateError) as exc:
        decode(b"{broken", b"", where=WHERE)
    assert exc.value.__cause__ is None


def test_intact_file_that_does_not_match_schema_is_refused():
    document = json.loads(encode(record(), b"")[0])
    del document["identity"]
    document["integrity"] = integrity.compute(document, b"")
    with pytest.raises(StateError, match=r"(?s)does not match the state schema.*identity"):
        decode(json.dumps(document).encode(), b"", where=WHERE)


# --- local files ------------------------------------------------------------------------------------


def test_write_bytes_creates_folders_and_writes_complete_content(tmp_path):
    target = tmp_path / "dag_id=d" / "run_id=r" / "task_id=t" / "attempt=1.resume.json"
    data = os.urandom(3 * 1024 * 1024)
    write_bytes(str(target), data)
    assert target.read_bytes() == data
    assert os.listdir(target.parent) == [target.name]  # no temp files left


def test_write_bytes_replaces_existing_file(tmp_path):
    target = tmp_path / "state.resume.json"
    write_bytes(str(target), b"old content that is longer")
    write_bytes(str(target), b"new")
    assert target.read_bytes() == b"new"
    assert os.listdir(tmp_path) == [target.name]


def test_failed_write_leaves_old_file_intact_and_no_temp_file(tmp_path):
    target = tmp_path / "state.resume.json"
    target.write_bytes(b"previous")
    with pytest.raises(TypeError):
        write_bytes(str(target), "not bytes")  # fails while writing the temp file
    assert target.read_bytes() == b"previous"
    assert os.listdir(tmp_path) == [target.name]


def test_failed_first_write_leaves_nothing(tmp_path):
    target = tmp_path / "sub" / "state.resume.json"
    with pytest.raises(TypeError):
        write_bytes(str(target), 12345)
    assert not target.exists()
    assert os.listdir(target.parent) == []


def test_read_bytes_missing_file_returns_none(tmp_path):
    assert read_bytes(StateLocation(f"file://{tmp_path}/nope/attempt=1.resume.json")) is None


def test_read_bytes_returns_content(tmp_path):
    target = tmp_path / "s.resume.json"
    target.write_bytes(b"content")
    assert read_bytes(StateLocation(f"file://{target}")) == b"content"


def test_read_bytes_unreadable_path_is_a_state_error_not_an_outage(tmp_path):
    # A folder where a file should be is not storage being down: retrying later would not help.
    url = f"file://{tmp_path}"
    with pytest.raises(StateError, match="Could not read state file") as err:
        read_bytes(StateLocation(url))
    assert not isinstance(err.value, StateStorageError)
    # Summarised: the kind of error, never the server path it names.
    assert "IsADirectoryError: Is a directory" in str(err.value)
    assert str(tmp_path) not in str(err.value)


def test_a_state_file_is_named_relative_to_its_folder_in_messages(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW__RESUME__STATE_FOLDER", str(tmp_path))
    folder = tmp_path / "dag_id=etl" / "attempt=1.resume.json"
    folder.mkdir(parents=True)
    with pytest.raises(StateError) as err:
        read_bytes(StateLocation(f"file://{folder}"))
    assert str(err.value) == (
        "Could not read state file dag_id=etl/attempt=1.resume.json: IsADirectoryError: Is a directory"
    )


def test_prepare_local_location_is_its_path(tmp_path):
    assert prepare(StateLocation(f"file://{tmp_path}/x.resume.json")) == f"{tmp_path}/x.resume.json"


def test_write_then_load_through_a_location(tmp_path):
    location = StateLocation(f"file://{tmp_path}/dag_id=etl/attempt=1.resume.json")
    data, digest = encode(record(), KEY)
    write_bytes(prepare(location), data)
    loaded, loaded_digest = load(location, KEY)
    assert loaded_digest == digest
    assert loaded.identity.task_id == "transform"


def test_load_missing_returns_none(tmp_path):
    assert load(StateLocation(f"file://{tmp_path}/missing.resume.json"), b"") is None


def test_load_uses_configured_signing_key(tmp_path, monkeypatch):
    location = StateLocation(f"file://{tmp_path}/a.resume.json")
    write_bytes(location.local_path, encode(record(), KEY)[0])
    monkeypatch.setenv("AIRFLOW__RESUME__SIGNING_KEY", KEY.decode())
    assert load(location) is not None
    monkeypatch.setenv("AIRFLOW__RESUME__SIGNING_KEY", "a-different-key")
    with pytest.raises(StateError, match="signed with another key"):
        load(location)


def test_load_refuses_unsigned_file_when_key_configured(tmp_path, monkeypatch):
    location = StateLocation(f"file://{tmp_path}/a.resume.json")
    write_bytes(location.local_path, encode(record(), b"")[0])
    monkeypatch.setenv("AIRFLOW__RESUME__SIGNING_KEY", KEY.decode())
    with pytest.raises(StateError, match=re.escape("State file .../a.resume.json is not signed")):
        load(location)


def test_load_refuses_tampered_file_on_disk(tmp_path):
    location = StateLocation(f"file://{tmp_path}/a.resume.json")
    write_bytes(location.local_path, encode(record(), b"")[0])
    with open(location.local_path, "r+b") as fh:
        content = fh.read().replace(b'"try_number":1', b'"try_number":2')
        fh.seek(0)
        fh.write(content)
    with pytest.raises(StateError, match="failed its integrity check"):
        load(location, b"")


# --- where state files go ----------------------------------------------------------------------------


def test_default_folder_is_base_log_folder():
    assert configured_folder() == (os.environ["AIRFLOW__LOGGING__BASE_LOG_FOLDER"], "")


def test_remote_logging_without_remote_folder_falls_back_to_base_log_folder(monkeypatch):
    monkeypatch.setenv("AIRFLOW__LOGGING__REMOTE_LOGGING", "True")
    monkeypatch.setenv("AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID", "aws_logs")
    assert configured_folder() == (os.environ["AIRFLOW__LOGGING__BASE_LOG_FOLDER"], "")


def test_remote_folder_ignored_when_remote_logging_off(monkeypatch):
    monkeypatch.setenv("AIRFLOW__LOGGING__REMOTE_LOGGING", "False")
    monkeypatch.setenv("AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER", "s3://logs-bucket/logs")
    assert configured_folder() == (os.environ["AIRFLOW__LOGGING__BASE_LOG_FOLDER"], "")


def test_remote_logging_wins_over_base_log_folder(monkeypatch):
    monkeypatch.setenv("AIRFLOW__LOGGING__REMOTE_LOGGING", "True")
    monkeypatch.setenv("AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER", "s3://logs-bucket/logs")
    monkeypatch.setenv("AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID", "aws_logs")
    assert configured_folder() == ("s3://logs-bucket/logs", "aws_logs")


def test_state_conn_id_wins_over_remote_log_conn_id(monkeypatch):
    monkeypatch.setenv("AIRFLOW__LOGGING__REMOTE_LOGGING", "True")
    monkeypatch.setenv("AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER", "s3://logs-bucket/logs")
    monkeypatch.setenv("AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID", "aws_logs")
    monkeypatch.setenv("AIRFLOW__RESUME__STATE_CONN_ID", "aws_state")
    assert configured_folder() == ("s3://logs-bucket/logs", "aws_state")


def test_state_folder_wins_over_remote_logging(monkeypatch):
    monkeypatch.setenv("AIRFLOW__LOGGING__REMOTE_LOGGING", "True")
    monkeypatch.setenv("AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER", "s3://logs-bucket/logs")
    monkeypatch.setenv("AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID", "aws_logs")
    monkeypatch.setenv("AIRFLOW__RESUME__STATE_FOLDER", "s3://state-bucket/resume")
    # README: an object-storage state folder without [resume] state_conn_id uses remote_log_conn_id.
    assert configured_folder() == ("s3://state-bucket/resume", "aws_logs")
    monkeypatch.setenv("AIRFLOW__RESUME__STATE_CONN_ID", "aws_state")
    assert configured_folder() == ("s3://state-bucket/resume", "aws_state")


@pytest.mark.parametrize("folder", ["/var/resume-state", "file:///var/resume-state"])
def test_a_local_state_folder_never_uses_the_log_connection(monkeypatch, folder):
    monkeypatch.setenv("AIRFLOW__LOGGING__REMOTE_LOGGING", "True")
    monkeypatch.setenv("AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER", "s3://logs-bucket/logs")
    monkeypatch.setenv("AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID", "aws_logs")
    monkeypatch.setenv("AIRFLOW__RESUME__STATE_FOLDER", folder)
    assert configured_folder() == (folder, "")


def test_state_is_read_from_the_state_folder_and_the_log_folders_only(monkeypatch):
    local_logs = folder_url(os.environ["AIRFLOW__LOGGING__BASE_LOG_FOLDER"])
    assert roots() == [StateRoot(local_logs, "")]

    monkeypatch.setenv("AIRFLOW__LOGGING__REMOTE_LOGGING", "True")
    monkeypatch.setenv("AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER", "s3://logs-bucket/logs/")
    monkeypatch.setenv("AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID", "aws_logs")
    monkeypatch.setenv("AIRFLOW__RESUME__STATE_FOLDER", "s3://state-bucket/resume")
    monkeypatch.setenv("AIRFLOW__RESUME__STATE_CONN_ID", "aws_state")
    # The configured folder first; the log folders keep state written before a configuration change.
    assert roots() == [
        StateRoot("s3://state-bucket/resume", "aws_state"),
        StateRoot(local_logs, ""),
        StateRoot("s3://logs-bucket/logs", "aws_state"),
    ]


def test_state_folder_wins_over_base_log_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW__RESUME__STATE_FOLDER", str(tmp_path))
    assert configured_folder() == (str(tmp_path), "")


def test_location_for_default_config_is_beside_the_task_log():
    location = location_for(dag_id="etl", run_id="r1", task_id="load", map_index=-1, try_number=2)
    base = os.environ["AIRFLOW__LOGGING__BASE_LOG_FOLDER"].rstrip("/")
    assert location == StateLocation(
        f"file://{base}/dag_id=etl/run_id=r1/task_id=load/attempt=2.resume.json", ""
    )


def test_location_for_remote_logging(monkeypatch):
    monkeypatch.setenv("AIRFLOW__LOGGING__REMOTE_LOGGING", "True")
    monkeypatch.setenv("AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER", "s3://logs-bucket/logs/")
    monkeypatch.setenv("AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID", "aws_logs")
    location = location_for(dag_id="etl", run_id="r1", task_id="load", map_index=4, try_number=1)
    assert (
        location.url
        == "s3://logs-bucket/logs/dag_id=etl/run_id=r1/task_id=load/map_index=4/attempt=1.resume.json"
    )
    assert location.conn_id == "aws_logs"


def test_location_for_state_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW__RESUME__STATE_FOLDER", f"{tmp_path}/")
    location = location_for(dag_id="etl", run_id="r1", task_id="load", map_index=-1, try_number=1)
    assert location.url == f"file://{tmp_path}/dag_id=etl/run_id=r1/task_id=load/attempt=1.resume.json"
    assert location.is_local


def test_location_for_follows_configured_log_template(monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW__RESUME__STATE_FOLDER", str(tmp_path))
    monkeypatch.setenv(
        "AIRFLOW__LOGGING__LOG_FILENAME_TEMPLATE", "{dag_id}/{task_id}/{run_id}/{try_number}.log"
    )
    location = location_for(dag_id="etl", run_id="r1", task_id="load", map_index=-1, try_number=3)
    assert location.url == f"file://{tmp_path}/etl/load/r1/3.resume.json"


def test_location_for_explicit_template_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW__RESUME__STATE_FOLDER", str(tmp_path))
    location = location_for(
        dag_id="etl", run_id="r1", task_id="load", map_index=-1, try_number=1, template="{{ ti.task_id }}.log"
    )
    assert location.url == f"file://{tmp_path}/load.resume.json"

"""
The provider's signed record in a resumed run's conf, and the ids of resumed runs.

Anyone who may trigger a run can write ``conf["__resume__"]``, so only a record the provider signed for
that very run may change what a run does; everything else is ignored, and the user is told so. Records
are stored in the metadata DB as JSON, so every check goes through a JSON round trip.
"""

from __future__ import annotations

import hashlib
import json
import re

import pytest
from airflow.configuration import conf as airflow_conf

from airflow_resume_provider import conf, run_record
from airflow_resume_provider.exceptions import SigningUnavailableError
from airflow_resume_provider.persisted import RESUME_RUN_PREFIX
from airflow_resume_provider.run_record import (
    MAX_RUN_ID_LENGTH,
    RunRecord,
    RunRecordCheck,
    check,
    check_quietly,
    looks_resumed,
    next_in_chain,
    resumed_run_id,
    sign,
)

DAG_ID = "etl"
SOURCE = "manual__2024-01-02T03:04:05+00:00"
OTHER_RUN = "manual__2024-01-03T00:00:00+00:00"
TAG = r"[0-9a-f]{10}"
DEFAULT_RUN_ID_PATTERN = re.compile(airflow_conf.get_default_value("scheduler", "allowed_run_id_pattern"))


@pytest.fixture(autouse=True)
def deployment_secret(monkeypatch):
    """Every test starts from the test deployment's jwt_secret and no [resume] signing_key."""
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "resume-tests-jwt-secret-0123456789abcdef")
    monkeypatch.delenv("AIRFLOW__RESUME__SIGNING_KEY", raising=False)
    monkeypatch.delenv("AIRFLOW__SCHEDULER__ALLOWED_RUN_ID_PATTERN", raising=False)


def a_record(**overrides) -> RunRecord:
    """The record of the first resume of SOURCE at 'transform', with the original run's context."""
    values = dict(
        parent_run_id=SOURCE,
        root_run_id=SOURCE,
        resume_count=1,
        resumed_at_task_id="transform",
        kind="manual",
        logical_date="2024-01-02T03:04:05+00:00",
        data_interval_start="2024-01-01T03:04:05+00:00",
        data_interval_end="2024-01-02T03:04:05+00:00",
        params={"resume": True, "day": "2024-01-01", "limit": 2.5, "tags": ["a", "Zoë"]},
        source={"dag_version": 3},
    )
    values.update(overrides)
    return RunRecord(**values)


def stored(value):
    """``value`` as it comes back from the metadata DB (a JSON column)."""
    return json.loads(json.dumps(value))


def resumed_conf(run_id: str, record: RunRecord | None = None) -> dict:
    """The conf of a resumed run the provider created under ``run_id``: user conf plus the signed record."""
    return stored({"day": "2024-01-01", "__resume__": sign(DAG_ID, run_id, record or a_record())})


def signed_raw(run_id: str, body: dict) -> dict:
    """A ``__resume__`` entry whose signature is valid for ``body`` (which need not be a valid record)."""
    return {**body, "signature": run_record._signature(run_record._secret(), DAG_ID, run_id, body)}


def assert_ignored(result: RunRecordCheck) -> None:
    assert result.record is None
    assert result.lineage == {}
    assert result.ignored is not None
    assert "'__resume__'" in result.ignored
    assert "ignored" in result.ignored
    assert "treated as a normal run" in result.ignored


# --- sign and check -----------------------------------------------------------------------------------


def test_signed_marker_verifies_for_its_run_after_a_json_round_trip():
    run_id = resumed_run_id(DAG_ID, SOURCE, SOURCE, 1)
    record = a_record(parent_failure=["transform", "ConnectionError", "timed out"])

    result = check(DAG_ID, run_id, resumed_conf(run_id, record))

    assert result.ignored is None
    assert result.record == record
    assert result.record.params["tags"] == ["a", "Zoë"]
    assert result.lineage == {
        "parent_run_id": SOURCE,
        "root_run_id": SOURCE,
        "resume_count": 1,
        "resumed_at_task_id": "transform",
        "kind": "manual",
        "retry_attempt": 0,
    }


def test_signature_does_not_depend_on_the_key_order_the_database_returns():
    run_id = resumed_run_id(DAG_ID, SOURCE, SOURCE, 1)
    entry = sign(DAG_ID, run_id, a_record())
    reordered = dict(reversed(list(entry.items())))
    assert check(DAG_ID, run_id, {"__resume__": reordered}).record == a_record()


@pytest.mark.parametrize("run_conf", [None, {}, {"day": "2024-01-01"}, ["__resume__"], "__resume__"])
def test_a_run_without_a_resume_entry_is_a_normal_run_and_nothing_is_reported(run_conf):
    assert check(DAG_ID, SOURCE, run_conf) == RunRecordCheck(record=None, ignored=None)
    assert check_quietly(DAG_ID, SOURCE, run_conf) == RunRecordCheck(record=None, ignored=None)


def test_a_marker_signed_for_one_run_is_ignored_on_another():
    run_a = resumed_run_id(DAG_ID, SOURCE, SOURCE, 1)
    copied = resumed_conf(run_a)  # e.g. pasted into "Trigger DAG w/ config" for a new run

    assert check(DAG_ID, run_a, copied).record is not None
    assert_ignored(check(DAG_ID, OTHER_RUN, copied))
    assert_ignored(check("other_dag", run_a, copied))


@pytest.mark.parametrize(
    "edit",
    [
        lambda m: m.update(parent_run_id=OTHER_RUN),
        lambda m: m.update(root_run_id=OTHER_RUN),
        lambda m: m.update(resume_count=2),
        lambda m: m.update(kind="retry"),
        lambda m: m.update(retry_attempt=1),
        lambda m: m.update(resumed_at_task_id="extract"),
        lambda m: m.update(logical_date="2030-01-01T00:00:00+00:00"),
        lambda m: m["params"].update(day="1999-12-31"),
        lambda m: m.update(parent_failure=["transform", "ValueError", "x"]),
        lambda m: m.update(extra_key="added"),
        lambda m: m.pop("data_interval_end"),
        lambda m: m.update(signature=m["signature"][:-1] + ("0" if m["signature"][-1] != "0" else "1")),
        lambda m: m.update(signature=m["signature"].upper()),
    ],
    ids=[
        "parent",
        "root",
        "count",
        "kind",
        "retry-attempt",
        "resume-point",
        "logical-date",
        "param-value",
        "parent-failure",
        "added-key",
        "removed-key",
        "signature-digit",
        "signature-case",
    ],
)
def test_any_edit_of_a_signed_marker_breaks_it(edit):
    run_id = resumed_run_id(DAG_ID, SOURCE, SOURCE, 1)
    run_conf = resumed_conf(run_id)
    edit(run_conf["__resume__"])
    assert_ignored(check(DAG_ID, run_id, stored(run_conf)))


@pytest.mark.parametrize(
    "entry",
    [
        None,
        "resume me",
        42,
        ["parent_run_id", SOURCE],
        {"parent_run_id": SOURCE, "root_run_id": SOURCE, "resume_count": 1},
        {"parent_run_id": SOURCE, "root_run_id": SOURCE, "resume_count": 1, "signature": None},
        {"parent_run_id": SOURCE, "root_run_id": SOURCE, "resume_count": 1, "signature": 1234},
        {"parent_run_id": SOURCE, "root_run_id": SOURCE, "resume_count": 1, "signature": ""},
        {"parent_run_id": SOURCE, "root_run_id": SOURCE, "resume_count": 1, "signature": "ab" * 32},
        {"resume_count": "abc", "retry_attempt": -1000, "signature": "ab" * 32},
    ],
    ids=[
        "null",
        "string",
        "number",
        "list",
        "no-signature",
        "null-signature",
        "int-signature",
        "empty-signature",
        "made-up-signature",
        "wrong-types",
    ],
)
def test_entries_the_provider_did_not_write_are_ignored_and_said_to_be(entry):
    run_conf = stored({"day": "2024-01-01", "__resume__": entry})
    assert_ignored(check(DAG_ID, SOURCE, run_conf))
    assert_ignored(check_quietly(DAG_ID, SOURCE, run_conf))


@pytest.mark.parametrize(
    "body",
    [
        {"parent_run_id": SOURCE, "root_run_id": SOURCE, "resume_count": "abc"},
        {"parent_run_id": SOURCE, "root_run_id": SOURCE, "resume_count": 1, "retry_attempt": -1000},
        {"parent_run_id": SOURCE, "root_run_id": SOURCE, "resume_count": 0},
        {"parent_run_id": SOURCE, "root_run_id": SOURCE, "resume_count": True},
        {"parent_run_id": SOURCE, "root_run_id": SOURCE, "resume_count": 1.0},
        {"parent_run_id": SOURCE, "root_run_id": SOURCE, "resume_count": 1, "kind": "forever"},
        {"parent_run_id": 7, "root_run_id": SOURCE, "resume_count": 1},
        {"root_run_id": SOURCE, "resume_count": 1},
    ],
    ids=[
        "count-not-int",
        "negative-retry-attempt",
        "count-zero",
        "count-bool",
        "count-float",
        "unknown-kind",
        "parent-not-str",
        "no-parent",
    ],
)
def test_a_correctly_signed_entry_with_invalid_fields_is_still_ignored(body):
    # Not forgeable without the secret; guards against a record of another provider version.
    run_conf = stored({"__resume__": signed_raw(SOURCE, body)})
    assert_ignored(check(DAG_ID, SOURCE, run_conf))


def test_a_non_ascii_signature_is_ignored_not_an_error():
    run_conf = stored({"__resume__": {"parent_run_id": SOURCE, "signature": "é" * 64}})
    assert_ignored(check(DAG_ID, SOURCE, run_conf))


# --- the secret ---------------------------------------------------------------------------------------


def test_a_marker_signed_with_another_deployments_secret_does_not_verify(monkeypatch):
    run_id = "resume__manual__x__1__0123456789"
    run_conf = resumed_conf(run_id)
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "another-deployment-secret")
    assert_ignored(check(DAG_ID, run_id, run_conf))


def test_signing_key_takes_precedence_over_jwt_secret(monkeypatch):
    run_id = "resume__manual__x__1__0123456789"
    with_jwt_secret = resumed_conf(run_id)

    monkeypatch.setenv("AIRFLOW__RESUME__SIGNING_KEY", "dedicated-resume-key")
    assert conf.run_record_secret() == b"dedicated-resume-key"
    assert_ignored(check(DAG_ID, run_id, with_jwt_secret))

    with_signing_key = resumed_conf(run_id)
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "rotated-jwt-secret")
    assert check(DAG_ID, run_id, with_signing_key).record == a_record()


def test_without_any_secret_check_refuses_to_decide(monkeypatch):
    run_id = "resume__manual__x__1__0123456789"
    run_conf = resumed_conf(run_id)
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "")
    assert conf.run_record_secret() == b""

    with pytest.raises(SigningUnavailableError) as err:
        check(DAG_ID, run_id, run_conf)
    assert "[api_auth] jwt_secret" in str(err.value)
    assert "[resume] signing_key" in str(err.value)
    assert "every Airflow component" in str(err.value)
    with pytest.raises(SigningUnavailableError):
        sign(DAG_ID, run_id, a_record())
    with pytest.raises(SigningUnavailableError):
        resumed_run_id(DAG_ID, SOURCE, SOURCE, 1)
    # Nothing to verify: no error for a normal run.
    assert check(DAG_ID, SOURCE, {"day": "2024-01-01"}) == RunRecordCheck()


def test_check_quietly_reports_an_unverifiable_marker_as_ignored(monkeypatch):
    run_id = "resume__manual__x__1__0123456789"
    run_conf = resumed_conf(run_id)
    monkeypatch.setattr(conf, "run_record_secret", lambda: b"")

    result = check_quietly(DAG_ID, run_id, run_conf)
    assert result.record is None
    assert result.ignored is not None
    assert "[api_auth] jwt_secret" in result.ignored
    assert check_quietly(DAG_ID, SOURCE, {"day": "2024-01-01"}) == RunRecordCheck()


# --- the resumed run's id -----------------------------------------------------------------------------


def test_resumed_run_id_is_deterministic_and_tagged():
    run_id = resumed_run_id(DAG_ID, SOURCE, SOURCE, 1)
    assert re.fullmatch(rf"resume__{re.escape(SOURCE)}__1__{TAG}", run_id)
    assert resumed_run_id(DAG_ID, SOURCE, SOURCE, 1) == run_id
    assert run_id.startswith(RESUME_RUN_PREFIX)
    assert looks_resumed(run_id)
    assert not looks_resumed(SOURCE)


def test_resumed_run_id_differs_per_source_run_count_dag_and_secret(monkeypatch):
    base = resumed_run_id(DAG_ID, SOURCE, SOURCE, 1)
    variants = {
        "source": resumed_run_id(DAG_ID, OTHER_RUN, SOURCE, 1),
        "count": resumed_run_id(DAG_ID, SOURCE, SOURCE, 2),
        "dag": resumed_run_id("other_dag", SOURCE, SOURCE, 1),
    }
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "another-deployment-secret")
    variants["secret"] = resumed_run_id(DAG_ID, SOURCE, SOURCE, 1)

    for name, run_id in variants.items():
        assert run_id != base, name
    # Only the tag tells another deployment's id apart: nobody without the secret can predict it.
    assert variants["secret"].rsplit("__", 1)[0] == base.rsplit("__", 1)[0]
    assert variants["dag"].rsplit("__", 1)[0] == base.rsplit("__", 1)[0]


@pytest.mark.parametrize(
    "root",
    [SOURCE, "scheduled__2024-01-01T00:00:00+00:00", "backfill__x.y~z", "r" * 227],
    ids=["manual", "scheduled", "punctuation", "longest-kept"],
)
def test_usable_roots_are_kept_in_an_id_airflow_accepts(root):
    run_id = resumed_run_id(DAG_ID, root, root, 1)
    assert run_id.startswith(f"resume__{root}__1__")
    assert DEFAULT_RUN_ID_PATTERN.match(run_id)
    assert len(run_id) <= MAX_RUN_ID_LENGTH


def test_run_id_length_limit_is_inclusive():
    fits = "r" * (MAX_RUN_ID_LENGTH - len("resume__") - len("__1__") - 10)
    assert len(resumed_run_id(DAG_ID, fits, fits, 1)) == MAX_RUN_ID_LENGTH

    too_long = fits + "r"
    digest = hashlib.sha256(too_long.encode()).hexdigest()[:24]
    assert re.fullmatch(rf"resume__{digest}__1__{TAG}", resumed_run_id(DAG_ID, too_long, too_long, 1))


@pytest.mark.parametrize(
    "root",
    ["manual run / with spaces", "scheduled__2024-01-01 00:00:00", "ünïcode__run", "x" * 300, "a\nb"],
    ids=["spaces-slash", "space", "non-ascii", "too-long", "newline"],
)
def test_unusable_roots_are_hashed_into_a_valid_deterministic_id(root):
    run_id = resumed_run_id(DAG_ID, root, root, 1)

    digest = hashlib.sha256(root.encode()).hexdigest()[:24]
    assert re.fullmatch(rf"resume__{digest}__1__{TAG}", run_id)
    assert DEFAULT_RUN_ID_PATTERN.match(run_id)
    assert len(run_id) <= MAX_RUN_ID_LENGTH
    assert resumed_run_id(DAG_ID, root, root, 1) == run_id
    # The next resume (of the resumed run) keeps the same hashed root.
    assert re.fullmatch(rf"resume__{digest}__2__{TAG}", resumed_run_id(DAG_ID, run_id, root, 2))


def test_different_unusable_roots_get_different_ids():
    assert resumed_run_id(DAG_ID, "run a", "run a", 1) != resumed_run_id(DAG_ID, "run b", "run b", 1)


def test_the_deployments_allowed_run_id_pattern_is_respected(monkeypatch):
    monkeypatch.setenv("AIRFLOW__SCHEDULER__ALLOWED_RUN_ID_PATTERN", "^[a-z0-9_]+$")
    run_id = resumed_run_id(DAG_ID, SOURCE, SOURCE, 1)  # ':' '+' '-' are not allowed here
    digest = hashlib.sha256(SOURCE.encode()).hexdigest()[:24]
    assert re.fullmatch(rf"resume__{digest}__1__{TAG}", run_id)
    assert re.match("^[a-z0-9_]+$", run_id)


def test_an_invalid_allowed_run_id_pattern_falls_back_to_airflows_default(monkeypatch):
    monkeypatch.setenv("AIRFLOW__SCHEDULER__ALLOWED_RUN_ID_PATTERN", "^[unclosed")
    assert resumed_run_id(DAG_ID, SOURCE, SOURCE, 1).startswith(f"resume__{SOURCE}__1__")
    assert resumed_run_id(DAG_ID, "a b", "a b", 1).startswith(
        f"resume__{hashlib.sha256(b'a b').hexdigest()[:24]}__1__"
    )


# --- the chain of resumed runs ------------------------------------------------------------------------


def test_first_resume_of_a_run_starts_the_chain():
    assert next_in_chain(SOURCE, check(DAG_ID, SOURCE, {"day": "2024-01-01"})) == (SOURCE, 1)


def test_resuming_a_resumed_run_counts_on_from_its_root():
    first = resumed_run_id(DAG_ID, SOURCE, SOURCE, 1)
    own = check(DAG_ID, first, resumed_conf(first))

    root, count = next_in_chain(first, own)
    assert (root, count) == (SOURCE, 2)
    second = resumed_run_id(DAG_ID, first, root, count)
    assert re.fullmatch(rf"resume__{re.escape(SOURCE)}__2__{TAG}", second)

    second_marker = a_record(parent_run_id=first, resume_count=2)
    third = next_in_chain(second, check(DAG_ID, second, resumed_conf(second, second_marker)))
    assert third == (SOURCE, 3)


def test_a_forged_marker_cannot_move_a_run_into_another_chain():
    forged = stored({"__resume__": {"parent_run_id": "victim", "root_run_id": "victim", "resume_count": 7}})
    own = check(DAG_ID, SOURCE, forged)
    assert own.record is None
    assert next_in_chain(SOURCE, own) == (SOURCE, 1)
    assert resumed_run_id(DAG_ID, SOURCE, *next_in_chain(SOURCE, own)).startswith(f"resume__{SOURCE}__1__")

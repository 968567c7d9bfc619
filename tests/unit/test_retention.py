"""
Retention without a database: when a run's state expires, the words of the refusal, which folder holds
one run's files under a log filename template, and which files in it are state files.

Templates are Airflow's default and the shapes deployments use; files are real files under ``tmp_path``.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta, timezone
from unittest import mock

import pytest

from airflow_resume_provider.retention import (
    Cleanup,
    ExpiredRun,
    LinkNotFollowed,
    StateFile,
    attempt_relpaths,
    expired_reason,
    human_bytes,
    list_files,
    list_folder,
    run_folder_relpath,
)
from airflow_resume_provider.state.paths import StateLocation

WHERE = "DAG 'etl', run 'manual__2026-01-01T00:00:00+00:00'"
ENDED = datetime(2026, 1, 1, 10, 0, tzinfo=timezone.utc)
RUN_ID = "manual__2026-01-01T00:00:00+00:00"


def default_template() -> str:
    from airflow.configuration import conf

    return conf.get_default_value("logging", "log_filename_template")


# --- expiry ---------------------------------------------------------------------------------------


def test_a_run_inside_the_window_has_not_expired():
    assert expired_reason(WHERE, ENDED, 30, ENDED + timedelta(days=29, hours=23)) is None


def test_a_run_past_the_window_expired_on_a_date_and_its_state_may_be_gone():
    reason = expired_reason(WHERE, ENDED, 30, ENDED + timedelta(days=45))
    assert reason == (
        f"{WHERE}: its state expired on 2026-01-31 10:00 UTC, 30 days after the run ended "
        "([resume] retention_days = 30); its state files may have been deleted, so it is not resumed. "
        "Trigger a new run instead."
    )


def test_the_state_expires_exactly_at_the_end_of_the_window():
    assert expired_reason(WHERE, ENDED, 1, ENDED + timedelta(days=1)) is not None
    assert expired_reason(WHERE, ENDED, 1, ENDED + timedelta(days=1) - timedelta(seconds=1)) is None


def test_zero_days_keeps_state_forever_and_a_run_without_an_end_never_expires():
    assert expired_reason(WHERE, ENDED, 0, ENDED + timedelta(days=10_000)) is None
    assert expired_reason(WHERE, None, 30, ENDED + timedelta(days=10_000)) is None


def test_a_naive_end_date_is_read_as_utc():
    reason = expired_reason(WHERE, ENDED.replace(tzinfo=None), 2, ENDED + timedelta(days=3))
    assert reason is not None and "expired on 2026-01-03 10:00 UTC" in reason


# --- one run's folder -----------------------------------------------------------------------------


def test_the_default_template_keeps_each_run_in_its_own_folder():
    assert run_folder_relpath(default_template(), "etl", RUN_ID) == f"dag_id=etl/run_id={RUN_ID}/"


@pytest.mark.parametrize(
    ("template", "folder"),
    [
        ("{dag_id}/{run_id}/{task_id}/{try_number}.log", f"etl/{RUN_ID}/"),
        (
            "logs/{{ ti.dag_id }}/runs/{{ ti.run_id }}/{{ ti.task_id }}.{{ try_number }}.log",
            f"logs/etl/runs/{RUN_ID}/",
        ),
        ("{{ ti.run_id }}/{{ ti.dag_id }}/{{ ti.task_id }}/{{ try_number }}.log", f"{RUN_ID}/etl/"),
    ],
)
def test_other_templates_give_the_folder_they_lay_out(template, folder):
    assert run_folder_relpath(template, "etl", RUN_ID) == folder


@pytest.mark.parametrize(
    "template",
    [
        # the task before the run: a folder per task, shared by every run of it
        "{{ ti.dag_id }}/{{ ti.task_id }}/{{ ti.run_id }}/{{ try_number }}.log",
        # no DAG in the folder: runs of two DAGs with the same run id would share it
        "{{ ti.run_id }}/{{ ti.task_id }}/{{ try_number }}.log",
        # run and task in one folder name
        "{{ ti.dag_id }}/{{ ti.run_id }}_{{ ti.task_id }}/{{ try_number }}.log",
        # values a state path cannot be built from: no state file was ever laid out by it
        "{{ ti.dag_id }}/{{ ts }}/{{ ti.task_id }}/{{ try_number }}.log",
    ],
)
def test_templates_without_a_folder_of_its_own_per_run_give_none(template):
    assert run_folder_relpath(template, "etl", RUN_ID) is None


def test_a_run_id_holding_a_slash_is_one_folder_all_the_same():
    assert run_folder_relpath(default_template(), "etl", "weird/run") == "dag_id=etl/run_id=weird/run/"


def test_without_a_run_folder_each_attempt_is_named_state_and_kill_marker():
    template = "{{ ti.dag_id }}/{{ ti.task_id }}/{{ ti.run_id }}/{{ try_number }}.log"
    assert list(attempt_relpaths(template, "etl", "r1", "load", -1, 2)) == [
        "etl/load/r1/1.resume.json",
        "etl/load/r1/1.resume-killed.json",
        "etl/load/r1/2.resume.json",
        "etl/load/r1/2.resume-killed.json",
    ]
    assert list(attempt_relpaths(default_template(), "etl", "r1", "load", 3, 1)) == [
        "dag_id=etl/run_id=r1/task_id=load/map_index=3/attempt=1.resume.json",
        "dag_id=etl/run_id=r1/task_id=load/map_index=3/attempt=1.resume-killed.json",
    ]


# --- the files in it ------------------------------------------------------------------------------


def test_only_state_files_and_kill_markers_of_the_run_are_listed(tmp_path):
    run = tmp_path / "dag_id=etl" / "run_id=r1"
    other_run = tmp_path / "dag_id=etl" / "run_id=r10"
    for path, size in [
        (run / "task_id=extract" / "attempt=1.resume.json", 120),
        (run / "task_id=extract" / "attempt=1.log", 999),
        (run / "task_id=transform" / "attempt=1.resume.json", 80),
        (run / "task_id=transform" / "attempt=1.resume-killed.json", 40),
        (run / "task_id=transform" / "notes.json", 5),
        (other_run / "task_id=extract" / "attempt=1.resume.json", 70),
    ]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * size)
    found = list_folder(StateLocation(url=f"file://{run}"))
    assert sorted((f.location.url.rsplit("/", 2)[-2:], f.size) for f in found) == [
        (["task_id=extract", "attempt=1.resume.json"], 120),
        (["task_id=transform", "attempt=1.resume-killed.json"], 40),
        (["task_id=transform", "attempt=1.resume.json"], 80),
    ]
    assert list_folder(StateLocation(url=f"file://{tmp_path}/dag_id=etl/run_id=missing")) == []


def test_sizes_read_as_people_read_them():
    assert human_bytes(0) == "0 bytes"
    assert human_bytes(1023) == "1023 bytes"
    assert human_bytes(12598) == "12.3 KiB (12598 bytes)"
    assert human_bytes(5 * 1024 * 1024) == "5.0 MiB (5242880 bytes)"


def test_the_summary_counts_files_bytes_and_runs():
    cleanup = Cleanup(35, datetime(2026, 1, 1, 12, 30, tzinfo=timezone.utc), None)
    files = [StateFile(StateLocation(url=f"file:///s/{i}.resume.json"), 1000) for i in range(3)]
    cleanup.runs = [
        ExpiredRun("etl", "r1", ENDED, "t", files[:2]),
        ExpiredRun("etl", "r2", ENDED, "t", files[2:]),
    ]
    cleanup.runs.append(ExpiredRun("etl", "r3", ENDED, "t"))  # nothing left of it: not counted
    assert cleanup.summary() == (
        "3 state files, 2.9 KiB (3000 bytes), of 2 runs of DAGs with resume enabled that ended before "
        "2026-01-01 12:30 UTC (more than 35 days ago)"
    )
    body = cleanup.to_dict(dry_run=True)
    assert (body["files"], body["bytes"], body["dry_run"], body["deleted"]) == (3, 3000, True, False)
    assert [r["run_id"] for r in body["runs"]] == ["r1", "r2"]


def test_without_a_run_folder_only_the_named_files_that_exist_are_listed(tmp_path):
    (tmp_path / "etl" / "load" / "r1").mkdir(parents=True)
    (tmp_path / "etl" / "load" / "r1" / "1.resume.json").write_bytes(b"x" * 33)
    names = attempt_relpaths(
        "{{ ti.dag_id }}/{{ ti.task_id }}/{{ ti.run_id }}/{{ try_number }}.log", "etl", "r1", "load", -1, 2
    )
    found = list_files([StateLocation(url=f"file://{tmp_path}/{rel}") for rel in names])
    assert [(f.location.url, f.size) for f in found] == [(f"file://{tmp_path}/etl/load/r1/1.resume.json", 33)]


# --- symbolic links: only regular files inside the folder are ever listed or deleted ---------------


def _outside(tmp_path):
    """A folder outside the state folder, holding files named like state: they must stay."""
    outside = tmp_path / "outside"
    (outside / "task_id=extract").mkdir(parents=True)
    (outside / "task_id=extract" / "attempt=1.resume.json").write_text("not yours")
    (outside / "secret.resume.json").write_text("not yours either")
    return outside


def _planned(root, run_folder):
    """What a cleanup lists in ``run_folder`` (under ``root``), as :func:`plan` lists it."""
    run = ExpiredRun(
        "etl", "r1", ENDED, "t", list_folder(StateLocation(url=f"file://{run_folder}"), str(root))
    )
    return Cleanup(35, ENDED, None, runs=[run])


@pytest.fixture
def delete_without_db(monkeypatch, tmp_path):
    """:func:`delete_state` with ``tmp_path/state`` as the only state folder and every run still old."""
    from airflow_resume_provider import retention
    from airflow_resume_provider.state import storage
    from airflow_resume_provider.state.paths import StateRoot

    root = tmp_path / "state"
    root.mkdir()
    monkeypatch.setattr(storage, "roots", lambda: [StateRoot(f"file://{root}")])
    monkeypatch.setattr(retention, "_still_old", lambda *args: None)

    def delete(planned):
        return retention.delete_state(lambda: contextlib.nullcontext(mock.Mock()), planned)

    return root, delete


def test_a_run_folder_that_is_a_symlink_is_not_followed_and_nothing_outside_is_listed(tmp_path):
    outside = _outside(tmp_path)
    root = tmp_path / "state"
    (root / "dag_id=etl").mkdir(parents=True)
    (root / "dag_id=etl" / "run_id=r1").symlink_to(outside, target_is_directory=True)

    with pytest.raises(LinkNotFollowed) as refused:
        list_folder(StateLocation(url=f"file://{root}/dag_id=etl/run_id=r1"), str(root))
    assert str(refused.value) == (
        "dag_id=etl/run_id=r1 is a symbolic link; it is not followed and nothing under it is deleted"
    )
    assert str(tmp_path) not in str(refused.value)  # named relative to the state folder
    # The same holds for a DAG folder that is a link, and for the per-attempt listing.
    (root / "dag_id=etl" / "run_id=r1").unlink()
    (root / "dag_id=etl").rmdir()
    (root / "dag_id=etl").symlink_to(tmp_path / "outside", target_is_directory=True)
    with pytest.raises(LinkNotFollowed):
        list_folder(StateLocation(url=f"file://{root}/dag_id=etl/task_id=extract"), str(root))
    named = [StateLocation(url=f"file://{root}/dag_id=etl/task_id=extract/attempt=1.resume.json")]
    assert list_files(named, str(root)) == []
    assert (outside / "task_id=extract" / "attempt=1.resume.json").read_text() == "not yours"


def test_symlinked_files_and_folders_inside_a_run_are_neither_listed_nor_deleted(tmp_path, delete_without_db):
    outside = _outside(tmp_path)
    root, delete = delete_without_db
    run = root / "dag_id=etl" / "run_id=r1"
    (run / "task_id=load").mkdir(parents=True)
    (run / "task_id=load" / "attempt=1.resume.json").write_text("{}")
    (run / "task_id=load" / "attempt=2.resume.json").symlink_to(outside / "secret.resume.json")
    (run / "task_id=extract").symlink_to(outside / "task_id=extract", target_is_directory=True)

    planned = _planned(root, run)
    assert [f.location.url for f in planned.runs[0].files] == [
        f"file://{run}/task_id=load/attempt=1.resume.json"
    ]
    done = delete(planned)
    assert (done.files, done.errors) == (1, [])
    assert not (run / "task_id=load" / "attempt=1.resume.json").exists()
    assert (run / "task_id=load" / "attempt=2.resume.json").is_symlink()  # the link itself stays too
    assert (outside / "secret.resume.json").read_text() == "not yours either"
    assert (outside / "task_id=extract" / "attempt=1.resume.json").read_text() == "not yours"


def test_a_folder_swapped_for_a_symlink_after_listing_is_not_followed_when_deleting(
    tmp_path, delete_without_db
):
    outside = _outside(tmp_path)
    root, delete = delete_without_db
    run = root / "dag_id=etl" / "run_id=r1"
    (run / "task_id=extract").mkdir(parents=True)
    (run / "task_id=extract" / "attempt=1.resume.json").write_text("{}")
    planned = _planned(root, run)
    assert planned.files == 1

    # Between the listing (and the confirmation) and the deletion, the run folder becomes a link.
    (run / "task_id=extract" / "attempt=1.resume.json").unlink()
    (run / "task_id=extract").rmdir()
    run.rmdir()
    run.symlink_to(outside, target_is_directory=True)
    done = delete(planned)
    assert done.files == 0
    assert len(done.errors) == 1
    assert (
        "LinkNotFollowed: dag_id=etl/run_id=r1 is a symbolic link or not a folder; not followed"
        in done.errors[0]
    )
    assert (outside / "task_id=extract" / "attempt=1.resume.json").read_text() == "not yours"

    # A file swapped for a link is not deleted either (neither the link nor what it points to).
    run.unlink()
    (run / "task_id=extract").mkdir(parents=True)
    (run / "task_id=extract" / "attempt=1.resume.json").symlink_to(outside / "secret.resume.json")
    done = delete(planned)
    assert done.files == 0
    assert "it is not a regular file (a symbolic link?); not deleted" in done.errors[0]
    assert (run / "task_id=extract" / "attempt=1.resume.json").is_symlink()
    assert (outside / "secret.resume.json").read_text() == "not yours either"


# --- days that no date is that long ago --------------------------------------------------------------


@pytest.mark.parametrize("days", [3_000_000, 10**30])
def test_older_than_days_that_overflows_is_refused_in_one_line_naming_the_option(days, capsys):
    from argparse import Namespace

    from airflow_resume_provider.cli import cleanup_command
    from airflow_resume_provider.retention import plan

    args = Namespace(older_than_days=days, dag_id=None, dry_run=True, yes=False, output="text")
    with pytest.raises(SystemExit) as exited:
        cleanup_command(args)
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"Refused: --older-than-days {days} is too large: give at most ")
    assert "Traceback" not in err
    with pytest.raises(ValueError, match=f"older_than_days {days} is too large"):
        plan(None, days)  # type: ignore[arg-type]

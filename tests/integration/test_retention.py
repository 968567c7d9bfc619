"""
Retention on a real metadata DB: a failed run past ``[resume] retention_days`` is refused without its
state being read, and ``airflow resume cleanup`` (through Airflow's
own CLI parser, in this process; once, and on a pseudo-terminal, as a new ``airflow`` process)
deletes exactly the state files of runs that ended before the cutoff.

Runs are made old the only way there is: their ``end_date`` is set back in the metadata DB.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.conftest import airflow_cli, airflow_cli_in_process
from tests.helpers import log_folder, run_dag, state_file, unique_logical_date

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("airflow_db")]

# Files opened by this process while a test watches (an audit hook cannot be removed: it only records
# while a list is set).
_opened: list[str] | None = None


def _record_opens(event: str, args: tuple) -> None:
    if event == "open" and _opened is not None and isinstance(args[0], (str, bytes, os.PathLike)):
        _opened.append(os.fsdecode(args[0]))


sys.addaudithook(_record_opens)


def _session():
    from airflow.utils.session import create_session

    return create_session(scoped=False)


def set_run(dag_id: str, run_id: str, *, ended_days_ago: float, state: str | None = None) -> datetime:
    """Set the run's end back by ``ended_days_ago`` days (and its state), straight in the metadata DB."""
    from airflow.models.dagrun import DagRun
    from sqlalchemy import update

    ended = datetime.now(timezone.utc) - timedelta(days=ended_days_ago)
    table = DagRun.__table__
    values = {"end_date": ended, **({"state": state} if state else {})}
    with _session() as session:
        session.execute(
            update(table).where(table.c.dag_id == dag_id, table.c.run_id == run_id).values(**values)
        )
        session.commit()
    return ended


def run_folder(dag_id: str, run_id: str) -> Path:
    return log_folder() / f"dag_id={dag_id}" / f"run_id={run_id}"


def state_files(dag_id: str, run_id: str) -> list[Path]:
    folder = run_folder(dag_id, run_id)
    return sorted([*folder.rglob("*.resume.json"), *folder.rglob("*.resume-killed.json")])


def assess(dag_id: str, run_id: str):
    from airflow_resume_provider.resume import assess as _assess

    with _session() as session:
        return _assess(session, dag_id, run_id)


# --- an expired run -------------------------------------------------------------------------------


def test_a_run_past_the_retention_window_is_refused_as_expired_without_reading_its_state(monkeypatch):
    global _opened
    from airflow_resume_provider.exceptions import NotResumableError
    from airflow_resume_provider.resume import resume

    dr = run_dag("resume_example_etl")
    assert dr.state == "failed"
    ended = set_run("resume_example_etl", dr.run_id, ended_days_ago=31)

    _opened = []
    try:
        verdict = assess("resume_example_etl", dr.run_id)
    finally:
        opened, _opened = _opened, None
    assert verdict.reason_code == "state_expired"
    expired_on = ended + timedelta(days=30)
    assert (
        f"its state expired on {expired_on:%Y-%m-%d %H:%M} UTC, 30 days after the run ended" in verdict.reason
    )
    assert "its state files may have been deleted" in verdict.reason
    assert [p for p in opened if ".resume" in p] == []  # no state file, no kill marker was even opened
    assert state_file("resume_example_etl", dr.run_id, "transform").exists()  # expired before any deletion

    with _session() as session, pytest.raises(NotResumableError) as refused:
        resume(session, "resume_example_etl", dr.run_id, user="tester")
    assert refused.value.verdict.reason_code == "state_expired"

    cli = airflow_cli_in_process(
        "resume", "status", "resume_example_etl", dr.run_id, "-o", "json", check=False
    )
    assert cli.returncode == 3, cli.stderr
    assert json.loads(cli.stdout)["reason_code"] == "state_expired"

    # A longer window, or none, and the same run is resumable again: its state is still there.
    monkeypatch.setenv("AIRFLOW__RESUME__RETENTION_DAYS", "60")
    assert assess("resume_example_etl", dr.run_id).resumable
    monkeypatch.setenv("AIRFLOW__RESUME__RETENTION_DAYS", "0")
    assert assess("resume_example_etl", dr.run_id).resumable

    # A setting that is not a number of days falls back to the default (30), and the verdict says so.
    for invalid in ("a month", "-1"):
        monkeypatch.setenv("AIRFLOW__RESUME__RETENTION_DAYS", invalid)
        fallback = assess("resume_example_etl", dr.run_id)
        assert fallback.reason_code == "state_expired"
        assert "30 days after the run ended" in fallback.reason
        assert fallback.warnings == [
            f"[resume] retention_days = {invalid!r} is not valid: a whole number of days from 0 (keep state "
            "forever) to 36500 is accepted; the default 30 is used instead"
        ]


def test_an_expired_run_is_not_retried_automatically_and_its_note_says_why():
    from airflow.models.dagrun import DagRun
    from sqlalchemy import select

    from airflow_resume_provider.retry.scheduling import schedule_retry

    dag_id = "resume_test_retry_one"
    dr = run_dag(dag_id)
    assert dr.state == "failed"
    set_run(dag_id, dr.run_id, ended_days_ago=33)  # past the window; the cleanup tests use 35 days
    with _session() as session:
        decision = schedule_retry(session, dag_id, dr.run_id)
    assert decision is not None and (decision.retry, decision.final) == (False, True)
    with _session() as session:
        note = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == dr.run_id)).note
    assert note.startswith(f"Not retried: DAG {dag_id!r}, run {dr.run_id!r}: its state expired on ")


# --- airflow resume cleanup -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def runs():
    """
    Runs of every kind cleanup must tell apart; ``old_*`` ended 40 days ago, cleanup is asked for 35.
    Their state files are listed before any cleanup.
    """
    from airflow_resume_provider.resume import resume

    made: dict[str, tuple[str, str]] = {}

    def make(name: str, dag_id: str = "resume_example_etl", **env: str) -> str:
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            # A logical date of its own: dag.test() replaces a run of the same DAG and logical date.
            run_id = run_dag(dag_id, logical_date=unique_logical_date()).run_id
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        made[name] = (dag_id, run_id)
        return run_id

    old_failed = make("old_failed")
    # What the API server's listener leaves beside a task set to failed by hand: deleted with the state.
    state_file("resume_example_etl", old_failed, "transform").with_name(
        "attempt=1.resume-killed.json"
    ).write_text("{}")
    # The task's log beside it (dag.test() logs to the console; a worker writes this file).
    state_file("resume_example_etl", old_failed, "transform").with_name("attempt=1.log").write_text("log\n")
    make("old_success", AIRFLOW_VAR_RESUME_EXAMPLE_FAIL="false")
    make("recent_failed")
    make("old_running")
    old_root = make("old_resumed")
    with _session() as session:
        resumed = resume(session, "resume_example_etl", old_root, user="tester")  # queued, not finished
    made["resumed"] = ("resume_example_etl", resumed.dag_run_id)
    not_opted_in = make("old_not_opted_in", "resume_test_not_opted_in")
    # A file named like state in the folder of a DAG that never enabled resume: not the provider's.
    planted = run_folder("resume_test_not_opted_in", not_opted_in) / "attempt=1.resume.json"
    planted.parent.mkdir(parents=True, exist_ok=True)
    planted.write_text("{}")

    for name in ("old_failed", "old_success", "old_resumed", "old_not_opted_in"):
        set_run(*made[name], ended_days_ago=40)
    set_run(*made["old_running"], ended_days_ago=40, state="running")
    files = {name: state_files(*made[name]) for name in made}
    assert files["old_failed"] and files["old_success"] and files["recent_failed"]
    return made, files


def cleanup(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return airflow_cli_in_process("resume", "cleanup", *args, env=env, check=False)


def existing(files: list[Path]) -> list[Path]:
    return [f for f in files if f.exists()]


def test_a_dry_run_shows_the_old_runs_files_and_bytes_and_deletes_nothing(runs):
    made, files = runs
    old = files["old_failed"] + files["old_success"]

    done = cleanup("--older-than-days", "35", "--dry-run", "-o", "json")
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert (body["dry_run"], body["deleted"], body["older_than_days"]) == (True, False, 35)
    assert sorted(r["run_id"] for r in body["runs"]) == sorted(
        [made["old_failed"][1], made["old_success"][1]]
    )
    assert body["files"] == len(old)
    assert body["bytes"] == sum(f.stat().st_size for f in old)
    assert [k["run_id"] for k in body["kept"]] == [made["old_resumed"][1]]
    assert "a run resumed from it" in body["kept"][0]["reason"]
    assert all(f.exists() for fs in files.values() for f in fs)

    text = cleanup("--older-than-days", "35", "--dry-run")
    assert text.returncode == 0, text.stderr
    assert f"Would delete {len(old)} state files, " in text.stdout
    assert "Dry run: nothing deleted." in text.stdout
    assert made["old_failed"][1] in text.stdout  # the runs are listed

    other = cleanup("--older-than-days", "35", "--dry-run", "--dag-id", "resume_test_chain", "-o", "json")
    assert (other.returncode, json.loads(other.stdout)["files"]) == (0, 0)


def test_without_y_and_without_a_terminal_nothing_is_deleted(runs):
    _, files = runs
    done = cleanup("--older-than-days", "35")
    assert done.returncode == 1
    assert "Would delete" in done.stdout
    assert "Dry run" not in done.stdout
    assert "Nothing deleted: no terminal to confirm on. Pass -y to go ahead without asking." in done.stderr
    assert all(f.exists() for fs in files.values() for f in fs)


def test_on_a_terminal_it_asks_and_no_deletes_nothing(runs):
    _, files = runs
    controller, terminal = pty.openpty()
    try:
        proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("airflow")), "resume", "cleanup", "--older-than-days", "35"],
            stdin=terminal,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        os.write(controller, b"n\n")
        out, err = proc.communicate(timeout=300)
    finally:
        os.close(terminal)
        os.close(controller)
    assert proc.returncode == 1, err
    assert "Would delete" in out
    assert "Delete these" in err and "[y/N]" in err
    assert "Cancelled: nothing deleted." in err
    assert all(f.exists() for fs in files.values() for f in fs)


def test_zero_days_is_refused_and_retention_zero_means_nothing_to_do():
    zero = cleanup("--older-than-days", "0")
    assert zero.returncode == 1
    assert "would delete everything" in zero.stderr

    forever = cleanup(env={"AIRFLOW__RESUME__RETENTION_DAYS": "0"})
    assert forever.returncode == 0, forever.stderr
    assert "Nothing to do: [resume] retention_days is 0, state is kept forever." in forever.stdout

    invalid = cleanup("--dry-run", env={"AIRFLOW__RESUME__RETENTION_DAYS": "a month"})
    assert invalid.returncode == 1
    assert "[resume] retention_days = 'a month' is not valid: a whole number of days" in invalid.stderr


def test_cleanup_deletes_exactly_the_state_of_the_old_finished_runs(runs):
    from airflow.models.log import Log
    from sqlalchemy import select

    made, files = runs
    old = files["old_failed"] + files["old_success"]
    size = sum(f.stat().st_size for f in old)

    done = cleanup("--older-than-days", "35", "-y")
    assert done.returncode == 0, done.stderr
    assert f"Deleted {len(old)} state files, " in done.stdout
    assert f"({size} bytes), of 2 runs" in done.stdout
    assert existing(old) == []
    for name in ("recent_failed", "old_running", "old_resumed", "resumed", "old_not_opted_in"):
        assert existing(files[name]) == files[name], name
    # Only state: the task logs of the old runs stay for Airflow's own log retention.
    assert list(run_folder(*made["old_failed"]).rglob("attempt=1.log"))

    # The old failed run is past the default window of 30 days: refused as expired, not as missing.
    assert assess(*made["old_failed"]).reason_code == "state_expired"
    with _session() as session:
        extra = session.scalar(
            select(Log.extra).where(Log.event == "cli_resume_cleanup").order_by(Log.id.desc())
        )
    assert json.loads(extra)["files"] == len(old)

    # The one plain `airflow resume cleanup` of the suite: the console entry point, and -o json's clean stdout.
    again = airflow_cli("resume", "cleanup", "--older-than-days", "35", "-y", "-o", "json", check=False)
    assert again.returncode == 0, again.stderr
    assert (json.loads(again.stdout)["files"], json.loads(again.stdout)["deleted"]) == (0, False)

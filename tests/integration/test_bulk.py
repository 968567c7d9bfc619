"""
Bulk resume on a real metadata DB: the service (each run on its own, dry run, selection by window) and
``airflow resume run DAG --all-failed`` through Airflow's own CLI parser: in this process (no seconds
of Airflow start-up per call), in a new ``airflow`` process once, and on a pseudo-terminal.
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
from tests.helpers import run_dag, state_file, unique_logical_date

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("airflow_db")]

DAG_ID = "resume_example_etl"


def _session():
    from airflow.utils.session import create_session

    return create_session(scoped=False)


def resume_many(run_ids, *, dry_run):
    from airflow_resume_provider.bulk import resume_many as _resume_many

    with _session() as session:
        return _resume_many(session, DAG_ID, run_ids, dry_run=dry_run, user="tester", triggered_by="cli")


def run_ids_of_dag() -> set[str]:
    from airflow.models.dagrun import DagRun
    from sqlalchemy import select

    with _session() as session:
        return set(session.scalars(select(DagRun.run_id).where(DagRun.dag_id == DAG_ID)))


def created_audit_rows(run_id: str) -> list[dict]:
    from airflow.models.log import Log
    from sqlalchemy import select

    with _session() as session:
        extras = session.scalars(
            select(Log.extra).where(Log.event == "resume_created", Log.dag_id == DAG_ID, Log.run_id == run_id)
        ).all()
    return [json.loads(e) for e in extras]


def failed_runs(n: int) -> list[str]:
    # Each with its own logical date: dag.test() clears the earlier runs of the same logical date.
    return [run_dag(DAG_ID, logical_date=unique_logical_date()).run_id for _ in range(n)]


def corrupt(run_id: str) -> None:
    """Edit the failed task's state file, as someone without the key would: the run is refused."""
    path = state_file(DAG_ID, run_id, "transform")
    path.write_text(path.read_text().replace('"amount":10', '"amount":99'))


def test_each_run_is_resumed_on_its_own_and_a_refused_one_stops_nothing():
    first, second, broken, already = failed_runs(4)
    corrupt(broken)
    earlier = resume_many([already], dry_run=False).results[0]
    assert earlier.status == "created"
    selection = [first, "no_such_run", broken, second, already, first]  # a duplicate counts once

    before = run_ids_of_dag()
    preview = resume_many(selection, dry_run=True)
    assert run_ids_of_dag() == before, "a dry run created a run"
    assert preview.total == 5 and preview.dry_run
    got = {r.dag_run_id: r for r in preview.results}
    assert [r.dag_run_id for r in preview.results] == [first, "no_such_run", broken, second, already]
    assert (got[first].status, got[first].resume_task_id) == ("would_resume", "transform"), got[first].reason
    assert (got[second].status, got[second].new_dag_run_id) == ("would_resume", None)
    assert (got["no_such_run"].status, got["no_such_run"].reason_code) == ("refused", "run_not_found")
    assert "has no run 'no_such_run'" in got["no_such_run"].reason
    assert (got[broken].status, got[broken].reason_code) == ("refused", "state_invalid")
    assert "integrity check" in got[broken].reason
    assert (got[already].status, got[already].new_dag_run_id) == ("existing", earlier.new_dag_run_id)
    assert not preview.all_resumed

    done = resume_many(selection, dry_run=False)
    got = {r.dag_run_id: r for r in done.results}
    assert [got[r].status for r in (first, "no_such_run", broken, second, already)] == [
        "created",
        "refused",
        "refused",
        "created",
        "existing",
    ]
    created = {got[first].new_dag_run_id, got[second].new_dag_run_id}
    assert run_ids_of_dag() == before | created
    assert got[first].new_dag_run_id.startswith(f"resume__{first}__1__")
    for source in (first, second):
        [row] = created_audit_rows(source)
        assert (row["new_run_id"], row["via"], row["kind"]) == (got[source].new_dag_run_id, "cli", "manual")

    again = resume_many([first, second], dry_run=False)
    assert [(r.status, r.new_dag_run_id) for r in again.results] == [
        ("existing", got[first].new_dag_run_id),
        ("existing", got[second].new_dag_run_id),
    ]


def test_the_window_selects_failed_runs_by_when_they_ended_and_too_many_is_refused():
    from airflow_resume_provider.bulk import TooManyRunsError, failed_run_ids

    start = datetime.now(timezone.utc)
    runs = failed_runs(3)
    ok = run_dag("resume_test_payload", run_conf={"payload_kb": 1}, logical_date=unique_logical_date())
    assert ok.state == "success"
    with _session() as session:
        assert failed_run_ids(session, DAG_ID, since=start) == runs  # oldest first
        assert failed_run_ids(session, DAG_ID, since=start.replace(tzinfo=None)) == runs  # no zone: UTC
        assert failed_run_ids(session, DAG_ID, since=start + timedelta(days=1)) == []
        assert (
            failed_run_ids(session, "resume_test_payload", since=start) == []
        )  # succeeded runs are not listed
        with pytest.raises(
            TooManyRunsError, match=r"3 failed runs match \(ended at or after .*more than the 2"
        ):
            failed_run_ids(session, DAG_ID, since=start, limit=2)


def resume_cli(*args: str, check: bool = False) -> subprocess.CompletedProcess:
    return airflow_cli_in_process("resume", "run", DAG_ID, *args, check=check)


def test_cli_all_failed_previews_asks_and_resumes_with_exit_codes():
    start = (datetime.now(timezone.utc) - timedelta(seconds=1)).isoformat()
    good, broken = failed_runs(2)
    corrupt(broken)
    before = run_ids_of_dag()

    # The one plain `airflow resume run` of the suite: the console entry point, and -o json's clean stdout.
    dry = airflow_cli(
        "resume", "run", DAG_ID, "--all-failed", "--since", start, "--dry-run", "-o", "json", check=False
    )
    assert dry.returncode == 3, dry.stderr  # one run would be refused
    body = json.loads(dry.stdout)
    assert (body["dry_run"], body["total"]) == (True, 2)
    assert [(r["dag_run_id"], r["status"]) for r in body["results"]] == [
        (good, "would_resume"),
        (broken, "refused"),
    ]
    text = resume_cli("--all-failed", "--since", start, "--dry-run")
    assert "2 failed runs of DAG 'resume_example_etl': 1 would be resumed, 1 refused." in text.stdout
    assert good in text.stdout and "state_invalid" in text.stdout

    unasked = resume_cli("--all-failed", "--since", start)
    assert unasked.returncode == 1
    assert "Nothing resumed: no terminal to confirm on. Pass -y to go ahead without asking." in unasked.stderr
    assert run_ids_of_dag() == before

    done = resume_cli("--all-failed", "--since", start, "-y", "-o", "json")
    assert done.returncode == 3, done.stderr
    results = {r["dag_run_id"]: r for r in json.loads(done.stdout)["results"]}
    assert results[good]["status"] == "created"
    assert results[broken]["reason_code"] == "state_invalid"
    assert run_ids_of_dag() == before | {results[good]["new_dag_run_id"]}

    # The resumed run has not run, so it is not failed: the window now holds the two originals only.
    rerun = resume_cli("--all-failed", "--since", start, "-y")
    assert rerun.returncode == 3
    assert "1 already resumed, 1 refused" in rerun.stdout

    fresh = resume_cli("--all-failed", "--since", datetime.now(timezone.utc).isoformat(), "-y")
    assert fresh.returncode == 0, fresh.stderr
    assert "No failed runs of DAG 'resume_example_etl' in the window: nothing to resume." in fresh.stdout


def test_cli_on_a_terminal_asks_and_no_resumes_nothing():
    start = (datetime.now(timezone.utc) - timedelta(seconds=1)).isoformat()
    [run_id] = failed_runs(1)
    before = run_ids_of_dag()
    controller, terminal = pty.openpty()
    try:
        proc = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("airflow")),
                "resume",
                "run",
                DAG_ID,
                "--all-failed",
                "--since",
                start,
            ],
            stdin=terminal,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=os.environ.copy(),
        )
        os.write(controller, b"n\n")
        out, err = proc.communicate(timeout=300)
    finally:
        os.close(terminal)
        os.close(controller)
    assert proc.returncode == 1, err
    assert "1 would be resumed" in out and run_id in out
    assert "Resume these 1 runs? [y/N]" in err
    assert "Cancelled: nothing resumed." in err
    assert run_ids_of_dag() == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("some_run", "--all-failed"), "Give either RUN_ID ('some_run') or --all-failed, not both."),
        (("--all-failed", "--from-task", "load"), "--from-task applies to one run"),
        ((), "Give the failed run's id (RUN_ID), or --all-failed"),
        (("some_run", "--since", "2026-11-01", "-y"), "--since, -y: only with --all-failed"),
        (("--all-failed", "--param", "threshold=3"), "--param and --conf apply to one run"),
        (("--all-failed", "--since", "yesterday"), "--since 'yesterday' is not an ISO 8601 date or time"),
        (
            ("--all-failed", "--since", "2026-11-02", "--until", "2026-11-01"),
            "--since 2026-11-02 is after --until 2026-11-01.",
        ),
    ],
)
def test_cli_refuses_options_that_do_not_fit(args, message, capsys):
    # Parsed and dispatched by Airflow's own CLI parser, in this process (the same code path, faster).
    from airflow.cli.cli_parser import get_parser

    parsed = get_parser().parse_args(["resume", "run", DAG_ID, *args])
    with pytest.raises(SystemExit) as exited:
        parsed.func(parsed)
    assert exited.value.code == 1
    assert message in capsys.readouterr().err


def test_cli_all_failed_of_an_unknown_dag_exits_4():
    done = airflow_cli_in_process("resume", "run", "no_such_dag", "--all-failed", "--dry-run", check=False)
    assert done.returncode == 4
    assert "DAG 'no_such_dag' not found." in done.stderr

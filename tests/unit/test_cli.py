"""The CLI's text output escapes control characters in every value from runs, tasks, state files or markers."""

from __future__ import annotations

import contextlib
import re
from types import SimpleNamespace

import pytest

from airflow_resume_provider import cli
from airflow_resume_provider.bulk import BulkOutcome, BulkResult
from airflow_resume_provider.models import Plan, PlanStep, ReasonCode, Verdict

#: Clear the screen, retitle the terminal, fake a line that says the run is fine, a C1 CSI, a link.
NASTY = "\x1b[2J\x1b[H\x1b]0;owned\x07\r\nRESUMABLE\x9b31m[link=https://x.invalid]y[/link]"
CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")


def _verdict() -> Verdict:
    return Verdict(
        dag_id="etl",
        dag_run_id="run" + NASTY,
        resumable=False,
        reason_code=ReasonCode.MANUAL_KILL,
        reason="task 'load' was set to failed by hand (" + NASTY + ")",
        failed_task_id="load",
        resume_task_id="load",
        failure=None,
        plan=Plan(
            resume_task_id="load",
            tasks=[
                PlanStep(task_id="extract" + NASTY, task_type="X", action="restored", source="a/" + NASTY),
                PlanStep(task_id="load", task_type="X", action="run", resume_point=True),
            ],
        ),
        resumed_run_id=None,
        lineage={},
        warnings=["Kill marker " + NASTY + " is ignored."],
    )


def _lines(out: str) -> list[str]:
    return out.splitlines()


def test_status_text_escapes_control_characters(monkeypatch, capsys):
    import airflow.utils.session

    from airflow_resume_provider import resume

    monkeypatch.setattr(airflow.utils.session, "create_session", lambda: contextlib.nullcontext(None))
    monkeypatch.setattr(resume, "assess", lambda *a, **k: _verdict())
    with pytest.raises(SystemExit) as exit_:
        cli.status_command(SimpleNamespace(dag_id="etl", run_id="r", from_task=None, output="text"))
    assert exit_.value.code == cli.EXIT_NOT_RESUMABLE
    out = capsys.readouterr().out
    assert not CONTROL.search(out), repr(out)
    assert "\\x1b[2J\\x1b[H\\x1b]0;owned\\x07\\r\\nRESUMABLE\\x9b31m" in out
    assert not any(line.startswith("RESUMABLE") for line in _lines(out))
    assert "Warning: Kill marker \\x1b[2J" in out
    # Rich markup in a value is shown as text, not turned into a style or a link.
    assert "link=https://x.invalid" in out.replace("\n", "")


def test_bulk_text_escapes_control_characters(capsys):
    outcome = BulkOutcome(
        results=[
            BulkResult(
                dag_run_id="r" + NASTY,
                status="refused",
                reason_code=ReasonCode.STATE_INVALID,
                reason="State file " + NASTY,
            )
        ],
        total=1,
        dry_run=True,
    )
    cli._print_bulk(SimpleNamespace(dag_id="etl" + NASTY, output="text"), outcome)
    out = capsys.readouterr().out
    assert not CONTROL.search(out), repr(out)
    assert "\\x1b]0;owned\\x07" in out


def test_errors_on_stderr_are_escaped(capsys):
    with pytest.raises(SystemExit):
        cli._fail("Run " + NASTY + " not found")
    err = capsys.readouterr().err
    assert not CONTROL.search(err), repr(err)

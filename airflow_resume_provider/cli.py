"""
``airflow resume status|run``: the same verdicts as the REST API, with exit codes scripts can test.

Exit codes: 0 resumable (status) or resumed (run: created, or already resumed), 3 not resumable,
4 unknown DAG or run, 1 any other error. ``airflow resume cleanup``: 0 deleted (or nothing to delete,
or a dry run), 1 refused, cancelled, or a file could not be listed or deleted.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from airflow.cli.cli_config import ActionCommand, Arg, GroupCommand, lazy_load_command

from airflow_resume_provider.display import terminal_safe

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_NOT_RESUMABLE = 3
EXIT_NOT_FOUND = 4

ARG_DAG_ID = Arg(("dag_id",), help="The DAG id")
ARG_RUN_ID = Arg(("run_id",), help="The id of the failed DAG run")
ARG_RUN_ID_OR_ALL = Arg(("run_id",), nargs="?", help="The id of the failed DAG run (or use --all-failed)")
ARG_ALL_FAILED = Arg(
    ("--all-failed",), action="store_true", help="Resume every failed run of the DAG (see --since, --until)"
)
ARG_SINCE = Arg(
    ("--since",), metavar="ISO", help="With --all-failed: runs that ended at or after (no zone: UTC)"
)
ARG_UNTIL = Arg(
    ("--until",), metavar="ISO", help="With --all-failed: runs that ended at or before (no zone: UTC)"
)
ARG_RUN_DRY_RUN = Arg(
    ("--dry-run",),
    action="store_true",
    help="Show what would happen (for one run: the changed inputs and the plan); create nothing",
)
ARG_PARAM = Arg(
    ("--param",),
    action="append",
    metavar="NAME=VALUE",
    help="Change a run-level param of the resumed run (repeatable; VALUE as JSON, else a string)",
)
ARG_CONF = Arg(
    ("--conf",), metavar="JSON", help="Top-level keys of the run's conf to change, as a JSON object"
)
ARG_RUN_YES = Arg(("-y", "--yes"), action="store_true", help="With --all-failed: resume without asking")
ARG_FROM_TASK = Arg(("--from-task",), help="Resume at this task (the failed task or an earlier one)")
ARG_RERUN_CHILDREN = Arg(
    ("--rerun-children",),
    action="store_true",
    help="A trigger step whose child run cannot be resumed triggers a fresh full child run instead",
)
ARG_OUTPUT = Arg(("-o", "--output"), choices=("text", "json"), default="text", help="Output format")
ARG_OLDER_THAN_DAYS = Arg(
    ("--older-than-days",),
    type=int,
    metavar="N",
    help="Delete the state of runs that ended more than N days ago (default: retention_days, section resume)",
)
ARG_CLEANUP_DAG_ID = Arg(("--dag-id",), help="Only the runs of this DAG")
ARG_DRY_RUN = Arg(("--dry-run",), action="store_true", help="Show what would be deleted; delete nothing")
ARG_YES = Arg(("-y", "--yes"), action="store_true", help="Delete without asking for confirmation")

RESUME_COMMANDS = (
    ActionCommand(
        name="status",
        help="Say whether a failed run can be resumed, why not, and what a resume would do",
        func=lazy_load_command("airflow_resume_provider.cli.status_command"),
        args=(ARG_DAG_ID, ARG_RUN_ID, ARG_FROM_TASK, ARG_RERUN_CHILDREN, ARG_OUTPUT),
    ),
    ActionCommand(
        name="run",
        help=(
            "Resume a failed run: a new run starts at the failed task with the same inputs (or with "
            "--param / --conf changed). With --all-failed: every failed run of the DAG, after showing "
            "what would happen and asking"
        ),
        func=lazy_load_command("airflow_resume_provider.cli.run_command"),
        args=(
            ARG_DAG_ID,
            ARG_RUN_ID_OR_ALL,
            ARG_FROM_TASK,
            ARG_PARAM,
            ARG_CONF,
            ARG_RERUN_CHILDREN,
            ARG_ALL_FAILED,
            ARG_SINCE,
            ARG_UNTIL,
            ARG_RUN_DRY_RUN,
            ARG_RUN_YES,
            ARG_OUTPUT,
        ),
    ),
    ActionCommand(
        name="check",
        help="Show this component's state folder and signing, and write and read a probe file there",
        func=lazy_load_command("airflow_resume_provider.cli.check_command"),
        args=(ARG_OUTPUT,),
    ),
    ActionCommand(
        name="cleanup",
        help="Delete the state files of finished runs that ended more than N days ago",
        func=lazy_load_command("airflow_resume_provider.cli.cleanup_command"),
        args=(ARG_OLDER_THAN_DAYS, ARG_CLEANUP_DAG_ID, ARG_DRY_RUN, ARG_YES, ARG_OUTPUT),
    ),
)


def get_cli_commands() -> list[GroupCommand]:
    from airflow_resume_provider.compat import airflow_supported

    if not airflow_supported():
        return []
    return [
        GroupCommand(
            name="resume",
            help="Resume failed runs of linear DAGs at the failed task (airflow-resume-provider)",
            subcommands=RESUME_COMMANDS,
        )
    ]


#: Where ``-o json`` documents go: the process's stdout, kept apart from log lines (see ``_quiet_logs``).
_json_out: Any = None


def _quiet_logs(args: Any) -> None:
    """
    With ``-o json`` keep Airflow's log lines out of the output that scripts parse: INFO lines are not
    logged, and whatever else is written to stdout (e.g. a provider's structlog line, which
    ``logging.disable`` does not silence) goes to stderr; the JSON document alone goes to stdout.
    """
    global _json_out
    if args.output == "json":
        import logging
        import os

        logging.disable(logging.INFO)
        sys.stdout.flush()
        _json_out = os.fdopen(os.dup(sys.stdout.fileno()), "w")
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())


def _say(text: str, file: Any = None) -> None:
    """Print text for people: values from runs, tasks, state files and markers can hold control
    characters (a failure message that clears the screen or fakes a line), shown escaped. Each line
    is escaped apart: a value that may hold a line break is escaped (``terminal_safe``) where the
    text is put together."""
    print("\n".join(terminal_safe(line) for line in str(text).split("\n")), file=file)


def _table(rows: list[dict[str, Any]], file: Any = None) -> None:
    from airflow.cli.simple_table import AirflowConsole

    safe = [{name: terminal_safe(value, markup=True) for name, value in row.items()} for row in rows]
    AirflowConsole(file=file).print_as(safe, output="table")


def _print(args: Any, payload: dict[str, Any], text: str, plan: list[Any] | None = None) -> None:
    """JSON for scripts (``-o json``: the API's exact shape and types); else a line and the plan as a table."""
    if args.output == "json":
        print(json.dumps(payload, indent=2, default=str), file=_json_out, flush=True)
        return
    _say(text)
    if plan:
        from airflow_resume_provider.tree_display import child_summary, tree_rows
        from airflow_resume_provider.ui.page import carried, map_summary

        rows = []
        # A trigger step's child run follows it, indented, with the child's own steps under it.
        for row in tree_rows(plan):
            indent = "  " * row.depth
            if row.child is not None:
                index = f"[{row.map_index}] " if row.map_index >= 0 else ""
                rows.append(_blank_row(task=f"{indent}{index}child: {child_summary(row.child)}"))
                continue
            assert row.step is not None
            step = row.step
            rows.append(
                {
                    "task": indent + step.task_id,
                    "action": step.action,
                    "resume point": "yes" if step.resume_point else "",
                    "map indexes": map_summary(step),
                    "restored from": step.source or "",
                    "reattaches to": ", ".join(carried(entry) for entry in step.carries),
                }
            )
        _table(rows)


def _blank_row(*, task: str) -> dict[str, str]:
    return {
        "task": task,
        "action": "",
        "resume point": "",
        "map indexes": "",
        "restored from": "",
        "reattaches to": "",
    }


def _cli_user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:
        return "cli"


def status_command(args: Any) -> None:
    from airflow.utils.session import create_session

    from airflow_resume_provider.causes import describe
    from airflow_resume_provider.exceptions import ResumeError, RunNotFoundError
    from airflow_resume_provider.resume import assess

    _quiet_logs(args)
    try:
        with create_session() as session:
            verdict = assess(
                session,
                args.dag_id,
                args.run_id,
                from_task_id=args.from_task,
                rerun_children=getattr(args, "rerun_children", False),
            )
    except RunNotFoundError as err:
        _say(str(err), file=sys.stderr)
        sys.exit(EXIT_NOT_FOUND)
    except ResumeError as err:
        _say(str(err), file=sys.stderr)
        sys.exit(EXIT_ERROR)
    payload = verdict.to_dict()
    if verdict.resumable:
        head = f"Resumable: run {args.run_id!r} of DAG {args.dag_id!r} resumes at {verdict.resume_task_id!r}."
        if verdict.resumed_run_id:
            head += f" Already resumed as {verdict.resumed_run_id!r}."
    else:
        head = f"Not resumable ({verdict.reason_code}): {terminal_safe(verdict.reason)}"
    head += "".join(f"\nWarning: {terminal_safe(warning)}" for warning in verdict.warnings)
    if verdict.failure:
        head += f"\nFailure (cause: {verdict.failure['cause']}): {describe(verdict.failure)}."
    _print(args, payload, head, verdict.plan.tasks)
    sys.exit(EXIT_OK if verdict.resumable else EXIT_NOT_RESUMABLE)


def _overrides(args: Any) -> Any:
    """The changed inputs of ``--param NAME=VALUE`` and ``--conf JSON`` (exit 1 naming a bad one)."""
    from airflow_resume_provider.inputs import InputOverrides, parse_param

    params: dict[str, Any] = {}
    for text in getattr(args, "param", None) or []:
        try:
            name, value = parse_param(text)
        except ValueError as err:
            _fail(str(err))
        params[name] = value
    run_conf: dict[str, Any] = {}
    if getattr(args, "conf", None) is not None:
        try:
            run_conf = json.loads(args.conf)
        except ValueError as err:
            _fail(f"--conf is not JSON: {err}.")
        if not isinstance(run_conf, dict):
            _fail('--conf must be a JSON object, e.g. \'{"region": "eu"}\'.')
    return InputOverrides(params=params, conf=run_conf)


def _changes_text(changes: list[Any]) -> str:
    if not changes:
        return "Inputs: unchanged."
    lines = [f"Inputs changed ({len(changes)}):"]
    lines += [
        f"  {c.param}: {json.dumps(c.from_, default=str)} -> {json.dumps(c.to, default=str)}"
        + ("" if c.source == "params" else " (conf)")
        for c in changes
    ]
    return "\n".join(lines)


def _dry_run_one(args: Any, overrides: Any) -> None:
    """``run DAG RUN --dry-run``: the verdict, the changed inputs and the plan; nothing created."""
    from airflow.utils.session import create_session

    from airflow_resume_provider.resume import preview

    with create_session() as session:
        answer = preview(
            session,
            args.dag_id,
            args.run_id,
            from_task_id=args.from_task,
            overrides=overrides or None,
            rerun_children=getattr(args, "rerun_children", False),
        )
    verdict = answer.verdict
    if verdict.resumable:
        head = (
            f"Dry run: run {args.run_id!r} of DAG {args.dag_id!r} would resume at {verdict.resume_task_id!r}."
        )
        if verdict.resumed_run_id:
            head += f" It was already resumed as {verdict.resumed_run_id!r}."
    else:
        head = f"Not resumable ({verdict.reason_code}): {terminal_safe(verdict.reason)}"
    head += "\n" + _changes_text(answer.changes) + "\nNothing created."
    _print(args, answer.to_dict(), head, verdict.plan.tasks)
    sys.exit(EXIT_OK if verdict.resumable else EXIT_NOT_RESUMABLE)


def run_command(args: Any) -> None:
    from airflow.utils.session import create_session

    from airflow_resume_provider.exceptions import (
        NotResumableError,
        ResumedWithOtherInputsError,
        ResumeError,
        RunNotFoundError,
    )
    from airflow_resume_provider.resume import resume

    _quiet_logs(args)
    _check_run_args(args)
    if args.all_failed:
        _run_all_failed(args)
    overrides = _overrides(args)
    try:
        if args.dry_run:
            _dry_run_one(args, overrides)
        _audit(
            "cli_resume_run",
            dag_id=args.dag_id,
            run_id=args.run_id,
            from_task_id=args.from_task,
            **({"changed": sorted(overrides.requested())} if overrides else {}),
        )
        with create_session() as session:
            outcome = resume(
                session,
                args.dag_id,
                args.run_id,
                from_task_id=args.from_task,
                user=_cli_user(),
                triggered_by="cli",
                overrides=overrides or None,
                rerun_children=getattr(args, "rerun_children", False),
            )
    except RunNotFoundError as err:
        _say(str(err), file=sys.stderr)
        sys.exit(EXIT_NOT_FOUND)
    except ResumedWithOtherInputsError as err:
        _say(str(err), file=sys.stderr)
        sys.exit(EXIT_NOT_RESUMABLE)
    except NotResumableError as err:
        _print(
            args,
            err.verdict.to_dict(),
            f"Not resumable ({err.verdict.reason_code}): {terminal_safe(err.verdict.reason)}",
        )
        sys.exit(EXIT_NOT_RESUMABLE)
    except ResumeError as err:
        _say(str(err), file=sys.stderr)
        sys.exit(EXIT_ERROR)
    if outcome.created:
        text = f"Created run {outcome.dag_run_id!r}: resumes {args.run_id!r} at {outcome.resume_task_id!r}."
        for child in outcome.child_runs:
            text += (
                f"\nStep {child['task_id']!r} waits for the resumed child run {child['dag_run_id']!r} of DAG "
                f"{child['dag_id']!r}."
            )
    else:
        text = f"Run {args.run_id!r} was already resumed as {outcome.dag_run_id!r}; nothing new created."
    if outcome.changes:
        text += "\n" + _changes_text(outcome.changes)
    _print(args, outcome.to_dict(), text)
    sys.exit(EXIT_OK)


def _fail(message: str) -> None:
    _say(message, file=sys.stderr)
    sys.exit(EXIT_ERROR)


def _check_run_args(args: Any) -> None:
    """One failed run, or --all-failed with its own options: never a mix that would be silently ignored."""
    if args.all_failed:
        if args.run_id is not None:
            _fail(f"Give either RUN_ID ({args.run_id!r}) or --all-failed, not both.")
        if args.from_task is not None:
            _fail("--from-task applies to one run; --all-failed resumes each run at its failed task.")
        if getattr(args, "param", None) or getattr(args, "conf", None) is not None:
            _fail("--param and --conf apply to one run; --all-failed resumes each run with its own inputs.")
        return
    if args.run_id is None:
        _fail("Give the failed run's id (RUN_ID), or --all-failed for every failed run of the DAG.")
    given = [
        name
        for name, on in (
            ("--since", args.since),
            ("--until", args.until),
            ("-y", args.yes),
        )
        if on
    ]
    if given:
        _fail(f"{', '.join(given)}: only with --all-failed.")


def _parse_time(option: str, text: str | None) -> Any:
    from datetime import datetime

    from airflow_resume_provider.compat import as_utc

    if text is None:
        return None
    try:
        return as_utc(datetime.fromisoformat(text))
    except ValueError:
        _fail(
            f"{option} {text!r} is not an ISO 8601 date or time (e.g. 2026-11-28 or 2026-11-28T22:00:00+00:00)."
        )


def _run_all_failed(args: Any) -> None:
    """Resume every failed run of the DAG in the window, after showing the dry run and asking."""
    from airflow.utils.session import create_session

    from airflow_resume_provider.bulk import failed_run_ids, require_dag, resume_many
    from airflow_resume_provider.exceptions import RunNotFoundError

    since, until = _parse_time("--since", args.since), _parse_time("--until", args.until)
    if since is not None and until is not None and since > until:
        _fail(f"--since {args.since} is after --until {args.until}.")
    try:
        with create_session() as session:
            require_dag(session, args.dag_id)
            run_ids = failed_run_ids(session, args.dag_id, since=since, until=until, limit=None)
            preview = resume_many(
                session,
                args.dag_id,
                run_ids,
                dry_run=True,
                user=_cli_user(),
                triggered_by="cli",
                rerun_children=getattr(args, "rerun_children", False),
            )
    except RunNotFoundError as err:
        _say(str(err), file=sys.stderr)
        sys.exit(EXIT_NOT_FOUND)
    pending = sum(r.status == "would_resume" for r in preview.results)
    if args.dry_run or not pending:
        _print_bulk(args, preview)
        sys.exit(EXIT_OK if preview.all_resumed else EXIT_NOT_RESUMABLE)
    if not args.yes:
        _print_bulk(args, preview, to_stderr=args.output == "json")
        _confirm(f"Resume these {pending} runs?", "Nothing resumed")
    _audit(
        "cli_resume_run_all_failed", dag_id=args.dag_id, since=args.since, until=args.until, runs=len(run_ids)
    )
    with create_session() as session:
        outcome = resume_many(
            session,
            args.dag_id,
            run_ids,
            dry_run=False,
            user=_cli_user(),
            triggered_by="cli",
            rerun_children=getattr(args, "rerun_children", False),
        )
    _print_bulk(args, outcome)
    sys.exit(EXIT_OK if outcome.all_resumed else EXIT_NOT_RESUMABLE)


def _confirm(question: str, refused: str) -> None:
    """Ask on the terminal; exit 1 (saying ``refused``) unless the answer is yes."""
    if not sys.stdin.isatty():
        _fail(f"{refused}: no terminal to confirm on. Pass -y to go ahead without asking.")
    from airflow.utils.helpers import ask_yesno

    def ask(text: str) -> None:  # on stderr: stdout may carry a document a script reads
        print(text, file=sys.stderr, flush=True)

    try:
        yes = ask_yesno(f"{question} [y/N]", default=False, output_fn=ask)
    except EOFError:
        yes = False
    if not yes:
        _fail(f"Cancelled: {refused[0].lower()}{refused[1:]}.")


_BULK_VERBS = {
    "created": "resumed",
    "existing": "already resumed",
    "would_resume": "would be resumed",
    "refused": "refused",
}


def _print_bulk(args: Any, outcome: Any, *, to_stderr: bool = False) -> None:
    """The bulk outcome as ``-o json`` (the REST API's body) or a table with a summary line."""
    if args.output == "json" and not to_stderr:
        print(json.dumps(outcome.to_dict(), indent=2), file=_json_out, flush=True)
        return
    out = sys.stderr if to_stderr else sys.stdout
    if not outcome.results:
        _say(f"No failed runs of DAG {args.dag_id!r} in the window: nothing to resume.", file=out)
        return
    from collections import Counter

    from airflow_resume_provider.tree_display import child_summary

    counts = Counter(r.status for r in outcome.results)
    summary = ", ".join(f"{counts[s]} {_BULK_VERBS[s]}" for s in _BULK_VERBS if counts[s])
    _say(f"{outcome.total} failed runs of DAG {args.dag_id!r}: {summary}.", file=out)
    rows = [
        {
            "run": r.dag_run_id,
            "status": _BULK_VERBS[r.status],
            "resumes at": r.resume_task_id or "",
            "resumed run": r.new_dag_run_id or "",
            "reason": f"{r.reason_code}: {r.reason}" if r.reason_code else "",
            "child runs": "; ".join(child_summary(child) for child in r.children),
        }
        for r in outcome.results
    ]
    _table(rows, file=out)


def _audit(event: str, *, dag_id: str | None, run_id: str | None = None, **extra: Any) -> None:
    """Record a command in Airflow's audit log, as Airflow's own CLI commands do."""
    from airflow.models.log import Log
    from airflow.utils.session import create_session

    with create_session() as session:
        session.add(
            Log(
                event=event,
                owner=_cli_user(),
                dag_id=dag_id,
                run_id=run_id,
                extra=json.dumps({**extra, "host": _hostname()}),
            )
        )


def _hostname() -> str:
    import socket

    return socket.gethostname()


def check_command(args: Any) -> None:
    """Exit 0 when this component's state folder works, 1 with each problem named otherwise."""
    from dataclasses import asdict

    from airflow_resume_provider.check import run_check

    _quiet_logs(args)
    report = run_check()
    _print(args, {**asdict(report), "ok": report.ok}, "\n".join(report.lines()))
    sys.exit(EXIT_OK if report.ok else EXIT_ERROR)


def cleanup_command(args: Any) -> None:
    """Delete the state files of runs that ended more than N days ago, after showing them and asking."""
    from datetime import datetime, timezone

    from airflow.utils.session import create_session

    from airflow_resume_provider import conf, retention

    _quiet_logs(args)
    days = args.older_than_days
    if days is None:
        problem = conf.problem("retention_days")
        if problem is not None:
            # Deleting on a guessed window could delete what the setting meant to keep: refuse.
            print(f"Refused: {problem.option_text}. Fix it, or pass --older-than-days N.", file=sys.stderr)
            sys.exit(EXIT_ERROR)
        days = conf.retention_days()
        if days == 0:
            text = (
                "Nothing to do: [resume] retention_days is 0, state is kept forever. Pass --older-than-days N "
                "to delete the state of runs that ended more than N days ago."
            )
            _print(args, {"deleted": False, "files": 0, "bytes": 0, "message": text}, text)
            sys.exit(EXIT_OK)
    if days <= 0:
        print(
            f"Refused: --older-than-days {days} would delete everything, the state of every finished run "
            "included the failure of a minute ago. Give a number of days of at least 1.",
            file=sys.stderr,
        )
        sys.exit(EXIT_ERROR)
    try:
        retention.cutoff_for(days)
    except OverflowError:
        option = "--older-than-days" if args.older_than_days is not None else "[resume] retention_days"
        most = (datetime.now(timezone.utc) - datetime.min.replace(tzinfo=timezone.utc)).days
        print(f"Refused: {option} {days} is too large: give at most {most} days.", file=sys.stderr)
        sys.exit(EXIT_ERROR)
    with create_session() as session:
        planned = retention.plan(session, days, dag_id=args.dag_id)
    if args.dry_run or not planned.files:
        _print_cleanup(args, planned)
        sys.exit(EXIT_ERROR if planned.errors else EXIT_OK)
    if not args.yes:
        _print_cleanup(args, planned)
        _confirm(f"Delete these {planned.files} state files?", "Nothing deleted")
    done = retention.delete_state(lambda: create_session(scoped=False), planned)
    _audit("cli_resume_cleanup", dag_id=args.dag_id, older_than_days=days, files=done.files, bytes=done.size)
    _print_cleanup(args, done)
    sys.exit(EXIT_ERROR if done.errors else EXIT_OK)


#: How many runs the text output of ``cleanup`` lists (``-o json`` lists them all).
CLEANUP_TABLE_ROWS = 50


def _print_cleanup(args: Any, result: Any) -> None:
    if args.output == "json":
        print(json.dumps(result.to_dict(dry_run=args.dry_run), indent=2), file=_json_out, flush=True)
    else:
        if result.deleted:
            print(f"Deleted {result.summary()}.")
        elif result.files:
            print(
                f"Would delete {result.summary()}." + (" Dry run: nothing deleted." if args.dry_run else "")
            )
        else:
            print(f"Nothing to delete: no state files of {terminal_safe(result.runs_text())}.")
        rows = [
            {name: terminal_safe(value, markup=True) for name, value in r.to_dict().items()}
            for r in result.runs
            if r.files
        ]
        if rows and not result.deleted:
            from airflow.cli.simple_table import AirflowConsole

            AirflowConsole().print_as(rows[:CLEANUP_TABLE_ROWS], output="table")
            if len(rows) > CLEANUP_TABLE_ROWS:
                print(f"... and {len(rows) - CLEANUP_TABLE_ROWS} more runs (-o json lists them all).")
        if result.kept:
            dag_id, run_id, why = result.kept[0]
            more = f" (and {len(result.kept) - 1} more, -o json lists them)" if len(result.kept) > 1 else ""
            print(terminal_safe(f"Kept the state of run {run_id!r} of DAG {dag_id!r}{more}: {why}."))
    for error in result.errors:
        print(f"PROBLEM: {terminal_safe(error)}", file=sys.stderr)

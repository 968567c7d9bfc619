"""
``airflow resume status|run``: the same verdicts as the REST API, with exit codes scripts can test.

Exit codes: 0 resumable (status) or resumed (run: created, or already resumed), 3 not resumable,
4 unknown DAG or run, 1 any other error.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from airflow.cli.cli_config import ActionCommand, Arg, GroupCommand, lazy_load_command

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_NOT_RESUMABLE = 3
EXIT_NOT_FOUND = 4

ARG_DAG_ID = Arg(("dag_id",), help="The DAG id")
ARG_RUN_ID = Arg(("run_id",), help="The id of the failed DAG run")
ARG_FROM_TASK = Arg(("--from-task",), help="Resume at this task (the failed task or an earlier one)")
ARG_OUTPUT = Arg(("-o", "--output"), choices=("text", "json"), default="text", help="Output format")

RESUME_COMMANDS = (
    ActionCommand(
        name="status",
        help="Say whether a failed run can be resumed, why not, and what a resume would do",
        func=lazy_load_command("airflow_resume_provider.cli.status_command"),
        args=(ARG_DAG_ID, ARG_RUN_ID, ARG_FROM_TASK, ARG_OUTPUT),
    ),
    ActionCommand(
        name="run",
        help="Resume a failed run: a new run starts at the failed task with the same inputs",
        func=lazy_load_command("airflow_resume_provider.cli.run_command"),
        args=(ARG_DAG_ID, ARG_RUN_ID, ARG_FROM_TASK, ARG_OUTPUT),
    ),
    ActionCommand(
        name="check",
        help="Show this component's state folder and signing, and write and read a probe file there",
        func=lazy_load_command("airflow_resume_provider.cli.check_command"),
        args=(ARG_OUTPUT,),
    ),
)


def get_cli_commands() -> list[GroupCommand]:
    return [
        GroupCommand(
            name="resume",
            help="Resume failed runs of linear DAGs at the failed task (airflow-resume-provider)",
            subcommands=RESUME_COMMANDS,
        )
    ]


def _quiet_logs(args: Any) -> None:
    """With ``-o json`` keep Airflow's INFO log lines out of the output that scripts parse."""
    if args.output == "json":
        import logging

        logging.disable(logging.INFO)


def _print(args: Any, payload: dict[str, Any], text: str, plan: list[Any] | None = None) -> None:
    """JSON for scripts (``-o json``: the API's exact shape and types); else a line and the plan as a table."""
    if args.output == "json":
        print(json.dumps(payload, indent=2, default=str))
        return
    print(text)
    if plan:
        from airflow.cli.simple_table import AirflowConsole

        AirflowConsole().print_as(
            [
                {
                    "task": step.task_id,
                    "action": step.action,
                    "resume point": "yes" if step.resume_point else "",
                    "restored from": step.source or "",
                }
                for step in plan
            ],
            output="table",
        )


def _cli_user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:
        return "cli"


def status_command(args: Any) -> None:
    from airflow.utils.session import create_session

    from airflow_resume_provider.exceptions import ResumeError, RunNotFoundError
    from airflow_resume_provider.resume import assess

    _quiet_logs(args)
    try:
        with create_session() as session:
            verdict = assess(session, args.dag_id, args.run_id, from_task_id=args.from_task)
    except RunNotFoundError as err:
        print(str(err), file=sys.stderr)
        sys.exit(EXIT_NOT_FOUND)
    except ResumeError as err:
        print(str(err), file=sys.stderr)
        sys.exit(EXIT_ERROR)
    payload = verdict.to_dict()
    if verdict.resumable:
        head = f"Resumable: run {args.run_id!r} of DAG {args.dag_id!r} resumes at {verdict.resume_task_id!r}."
        if verdict.resumed_run_id:
            head += f" Already resumed as {verdict.resumed_run_id!r}."
    else:
        head = f"Not resumable ({verdict.reason_code}): {verdict.reason}"
    _print(args, payload, head, verdict.plan.tasks)
    sys.exit(EXIT_OK if verdict.resumable else EXIT_NOT_RESUMABLE)


def run_command(args: Any) -> None:
    from airflow.utils.session import create_session

    from airflow_resume_provider.exceptions import NotResumableError, ResumeError, RunNotFoundError
    from airflow_resume_provider.resume import resume

    _quiet_logs(args)
    _audit(args)
    try:
        with create_session() as session:
            outcome = resume(
                session,
                args.dag_id,
                args.run_id,
                from_task_id=args.from_task,
                user=_cli_user(),
                triggered_by="cli",
            )
    except RunNotFoundError as err:
        print(str(err), file=sys.stderr)
        sys.exit(EXIT_NOT_FOUND)
    except NotResumableError as err:
        _print(
            args, err.verdict.to_dict(), f"Not resumable ({err.verdict.reason_code}): {err.verdict.reason}"
        )
        sys.exit(EXIT_NOT_RESUMABLE)
    except ResumeError as err:
        print(str(err), file=sys.stderr)
        sys.exit(EXIT_ERROR)
    if outcome.created:
        text = f"Created run {outcome.dag_run_id!r}: resumes {args.run_id!r} at {outcome.resume_task_id!r}."
    else:
        text = f"Run {args.run_id!r} was already resumed as {outcome.dag_run_id!r}; nothing new created."
    _print(args, outcome.to_dict(), text)
    sys.exit(EXIT_OK)


def _audit(args: Any) -> None:
    """Record the command in Airflow's audit log, as Airflow's own CLI commands do."""
    from airflow.models.log import Log
    from airflow.utils.session import create_session

    with create_session() as session:
        session.add(
            Log(
                event="cli_resume_run",
                owner=_cli_user(),
                dag_id=args.dag_id,
                run_id=args.run_id,
                extra=json.dumps({"from_task_id": args.from_task, "host": _hostname()}),
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

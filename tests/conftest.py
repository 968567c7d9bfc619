"""
Test environment: a throw-away AIRFLOW_HOME and metadata DB, set up before Airflow is imported.

``RESUME_TEST_DB=postgres`` runs the suite on a fresh PostgreSQL database (127.0.0.1:5432, trust auth);
the default is SQLite in the temporary AIRFLOW_HOME.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from tools.airflow_home import in_process_env  # imports no airflow: safe before the env is set

REPO = Path(__file__).resolve().parent.parent
HOME = Path(tempfile.mkdtemp(prefix="resume-test-home-"))
DAGS = HOME / "dags"
DAGS.mkdir()
for source in (REPO / "example_dags", REPO / "tests" / "dags"):
    for dag_file in source.glob("*.py"):
        shutil.copy(dag_file, DAGS / dag_file.name)

BACKEND = os.environ.get("RESUME_TEST_DB", "sqlite")
PG_DB = f"resume_test_{uuid.uuid4().hex[:10]}"

os.environ.update(in_process_env(HOME, DAGS, jwt_secret="resume-tests-jwt-secret-0123456789abcdef"))
if BACKEND == "postgres":
    import psycopg2

    admin = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="test")
    admin.autocommit = True
    admin.cursor().execute(f"CREATE DATABASE {PG_DB}")
    admin.close()
    os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = (
        f"postgresql+psycopg2://postgres@127.0.0.1:5432/{PG_DB}"
    )
elif BACKEND != "sqlite":
    raise RuntimeError(f"RESUME_TEST_DB must be 'sqlite' or 'postgres', not {BACKEND!r}")

import pytest  # noqa: E402

pytest_plugins = ["tests.stack_fixtures"]


def airflow_cli(
    *args: str, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess:
    """Run the ``airflow`` CLI of this interpreter's environment with the test AIRFLOW_HOME."""
    airflow = Path(sys.executable).with_name("airflow")
    return subprocess.run(
        [str(airflow), *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=check,
        timeout=300,
    )


def airflow_cli_in_process(
    *args: str, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess:
    """
    Run an ``airflow`` CLI command in this process, as :func:`airflow_cli` runs it in a new one, without
    its seconds of Airflow start-up: Airflow's own CLI parser (with the provider's commands as
    registered) parses ``args`` and dispatches them. What a subprocess with captured output would
    have is kept: stdin is not a terminal (``/dev/null``), stdout and stderr are files at the file
    descriptor level (``-o json`` moves descriptors), the exit code is that of ``SystemExit`` (or 1
    and a traceback on an uncaught error), ``env`` holds for this call only, and what a command
    changes for the rest of its process (``logging.disable``, the provider's JSON stream) is undone.
    The thread's scoped DB session is removed before and after, so the command reads the metadata DB
    afresh (Airflow's sessions keep loaded rows across commits) and leaves no rows behind either.
    Airflow's log lines go where its log handlers point, not into the captured output.
    """
    import logging
    import traceback

    from airflow import settings
    from airflow.cli.cli_parser import get_parser

    from airflow_resume_provider import cli as provider_cli

    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved_env = {k: os.environ.get(k) for k in env or {}}
    saved_streams = (sys.stdin, sys.stdout, sys.stderr)
    saved_fds = {fd: os.dup(fd) for fd in (0, 1, 2)}
    saved_disable = logging.root.manager.disable
    code: int
    with tempfile.TemporaryFile() as out_file, tempfile.TemporaryFile() as err_file:
        null = os.open(os.devnull, os.O_RDONLY)
        try:
            os.environ.update(env or {})
            if settings.Session is not None:
                settings.Session.remove()
            os.dup2(null, 0)
            os.dup2(out_file.fileno(), 1)
            os.dup2(err_file.fileno(), 2)
            sys.stdin = open(0, closefd=False)  # noqa: SIM115 - closed in the finally below
            sys.stdout = open(1, "w", closefd=False, encoding="utf-8")  # noqa: SIM115
            sys.stderr = open(2, "w", closefd=False, encoding="utf-8")  # noqa: SIM115
            try:
                parsed = get_parser().parse_args(list(args))
                parsed.func(parsed)
                code = 0
            except SystemExit as exited:  # as the interpreter turns it into an exit status
                if exited.code is None or isinstance(exited.code, int):
                    code = exited.code or 0
                else:
                    print(exited.code, file=sys.stderr)
                    code = 1
            except Exception:
                traceback.print_exc()
                code = 1
            finally:
                if provider_cli._json_out is not None:
                    provider_cli._json_out.close()
                    provider_cli._json_out = None
                for stream in (sys.stdout, sys.stderr):
                    stream.flush()
                    stream.close()
                sys.stdin.close()
                if settings.Session is not None:
                    settings.Session.remove()
        finally:
            sys.stdin, sys.stdout, sys.stderr = saved_streams
            for fd, saved in saved_fds.items():
                os.dup2(saved, fd)
                os.close(saved)
            os.close(null)
            logging.disable(saved_disable)
            for k, v in saved_env.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        out_file.seek(0)
        err_file.seek(0)
        stdout = out_file.read().decode("utf-8", errors="replace")
        stderr = err_file.read().decode("utf-8", errors="replace")
    done = subprocess.CompletedProcess(["airflow", *args], code, stdout, stderr)
    if check:
        done.check_returncode()
    return done


@pytest.fixture(scope="session")
def airflow_db():
    """A migrated metadata DB, shared by the session's tests."""
    airflow_cli("db", "migrate")
    yield os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{HOME / 'airflow.db'}")


def pytest_sessionfinish(session, exitstatus):
    if BACKEND == "postgres":
        try:
            from airflow import settings

            if settings.Session is not None:
                settings.Session.remove()  # no session left holding a connection to the dropped database
            if settings.engine is not None:
                settings.engine.dispose()
            admin = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="test")
            admin.autocommit = True
            admin.cursor().execute(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")
            admin.close()
        except Exception as err:  # leaving a test database behind must not fail the run
            print(f"could not drop {PG_DB}: {err}", file=sys.stderr)
    shutil.rmtree(HOME, ignore_errors=True)


def pytest_addoption(parser):
    parser.addoption(
        "--reverse-modules",
        action="store_true",
        help="run the test modules in reverse order (each module's tests keep their order): "
        "shows that no module depends on what an earlier one left behind",
    )


def pytest_collection_modifyitems(config, items):
    if not config.getoption("--reverse-modules"):
        return
    modules: dict[str, list] = {}
    for item in items:
        modules.setdefault(item.nodeid.split("::")[0], []).append(item)
    items[:] = [item for module in reversed(list(modules)) for item in modules[module]]

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

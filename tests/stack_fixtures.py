"""
Fixtures for end-to-end and browser tests: one real Airflow stack per test session, shared.

With ``RESUME_TEST_DB=postgres`` (the end-to-end pass of CI) the stack uses PostgreSQL and remote
logging to S3 served by ``moto_server`` over HTTP, so state files live on S3; with ``RESUME_TEST_DB=sqlite``
(the default; the ``release`` set on the older Airflow) it uses SQLite and local logs, Airflow's
embedded default. Between them, both state stores are proven end to end.

Either way the stack is multi-team (``[core] multi_team``): the DAGs folder is a bundle of no team, as
on a stack without teams, and teams ``team_a`` and ``team_b`` each own a bundle with one DAG
(``tests/dags/teams``). The auth manager is ``tests.auth_manager.StackAuthManager`` (SimpleAuthManager
plus a user ``auditor`` who may read runs but not XComs, and team members) and the XCom backend is
``tests.xcom_backend.RejectingXComBackend`` (Airflow's own, but refusing the provider's announcements of
one DAG), imported by the Airflow processes from the repository root on ``PYTHONPATH``.
"""

from __future__ import annotations

import json
import os

import pytest

from tools.airflow_stack import REPO, AirflowStack
from tools.moto_s3 import aws_connection, moto_s3

BUCKET = "airflow-logs"
AUTH_MANAGER = "tests.auth_manager.StackAuthManager"
TEAMS = {team: REPO / "tests" / "dags" / "teams" / team for team in ("team_a", "team_b")}
XCOM_BACKEND = "tests.xcom_backend.RejectingXComBackend"
#: The OpenLineage events of the shared stack (file transport), in its home.
OPENLINEAGE_EVENTS = "openlineage-events.jsonl"


def openlineage_env(home) -> dict[str, str]:
    """
    With the OpenLineage provider installed: its file transport, the provider's facet function, and
    lineage only for DAGs that enable it (``enable_lineage(dag)``), so the other tests' tasks emit nothing.
    """
    from importlib.util import find_spec

    if find_spec("airflow.providers.openlineage") is None:
        return {}
    transport = {"type": "file", "log_file_path": str(home / OPENLINEAGE_EVENTS), "append": True}
    return {
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(transport),
        "AIRFLOW__OPENLINEAGE__SELECTIVE_ENABLE": "True",
        "AIRFLOW__OPENLINEAGE__CUSTOM_RUN_FACETS": "airflow_resume_provider.lineage.resume_run_facets",
    }


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory):
    with moto_s3(tmp_path_factory.mktemp("moto"), BUCKET) as (endpoint, s3):
        yield endpoint, s3


@pytest.fixture(scope="session")
def backend() -> str:
    return os.environ.get("RESUME_TEST_DB", "sqlite")


@pytest.fixture(scope="session")
def stack(backend, tmp_path_factory, request):
    extra_env = {
        "AIRFLOW__CORE__AUTH_MANAGER": AUTH_MANAGER,
        "AIRFLOW__CORE__XCOM_BACKEND": XCOM_BACKEND,
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p),
    }
    home = tmp_path_factory.mktemp("airflow-e2e")
    extra_env |= openlineage_env(home)
    s3 = None
    if backend == "postgres":
        endpoint, s3 = request.getfixturevalue("moto_endpoint")
        extra_env |= {
            "AIRFLOW__LOGGING__REMOTE_LOGGING": "True",
            "AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER": f"s3://{BUCKET}/logs",
            "AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID": "aws_moto",
            "AIRFLOW_CONN_AWS_MOTO": aws_connection(endpoint),
        }
    airflow = AirflowStack(
        home=home,
        backend=backend,
        extra_env=extra_env,
        s3=s3,
        team_dag_sources=TEAMS,
    )
    try:
        airflow.start()
        yield airflow
    finally:
        airflow.stop()
        for name in ("scheduler", "api-server", "dag-processor", "triggerer"):
            text = airflow.component_log(name)
            assert "UNEXPECTED COMMIT" not in text, f"{name} logged an UNEXPECTED COMMIT"

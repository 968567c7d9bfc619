"""The DAG policy: bad opt-ins are DAG import errors with precise messages; other DAGs are untouched."""

from __future__ import annotations

import json

import pytest

from tests.conftest import airflow_cli

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("airflow_db")]


def json_rows(output: str) -> list[dict]:
    """The JSON table a CLI command printed, among its log lines."""
    return json.loads(next(line for line in output.splitlines() if line.startswith("[{")))


@pytest.fixture(scope="module")
def import_errors() -> dict[str, str]:
    airflow_cli("dags", "reserialize")
    # The command exits 1 when there are import errors, which is what this test wants to see.
    out = airflow_cli("dags", "list-import-errors", "-o", "json", check=False).stdout
    rows = json_rows(out)
    return {row["filepath"].rsplit("/", 1)[-1]: row["error"] for row in rows}


def test_non_linear_dag_with_resume_is_an_import_error_naming_the_tasks(import_errors):
    error = import_errors["resume_test_nonlinear.py"]
    assert "AirflowClusterPolicyViolation" in error
    assert "DAG 'resume_test_nonlinear' has resume enabled but is not linear" in error
    assert "branching (more than one downstream task) at 'start'" in error
    assert "joining (more than one upstream task) at 'end'" in error


def test_bad_resume_param_is_an_import_error_naming_the_keys(import_errors):
    error = import_errors["resume_test_bad_param.py"]
    assert "DAG 'resume_test_bad_param': invalid params['resume']" in error
    assert "key 'retries'" in error and "greater than or equal to 0" in error
    assert "key 'colour': unknown key" in error


def test_dags_that_do_not_opt_in_and_valid_ones_import_cleanly(import_errors):
    assert "resume_test_not_opted_in.py" not in import_errors
    assert "resume_example_etl.py" not in import_errors
    assert "resume_test_chain.py" not in import_errors
    dags = airflow_cli("dags", "list", "-o", "json").stdout
    ids = {d["dag_id"] for d in json_rows(dags)}
    assert {"resume_test_not_opted_in", "resume_example_etl", "resume_test_chain"} <= ids

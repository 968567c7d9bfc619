"""The mapped example DAG: one partition fails; the resume loads only that partition again."""

from __future__ import annotations

import pytest

from tests.helpers import run_dag, run_existing_run, unique_logical_date, xcom_value
from tests.integration.test_mapped import map_states
from tests.integration.test_resume import assess, resume

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("airflow_db")]

DAG_ID = "resume_example_mapped"


def test_the_resumed_example_loads_only_the_failed_partition(monkeypatch):
    dr = run_dag(DAG_ID, logical_date=unique_logical_date())
    assert dr.state == "failed"
    verdict = assess(DAG_ID, dr.run_id)
    assert verdict.resumable, verdict.reason
    point = next(s for s in verdict.plan.tasks if s.resume_point)
    assert point.task_id == "load_partition" and point.mapped
    assert [m.map_index for m in point.map_indexes if m.action == "run"] == [3]

    monkeypatch.setenv("AIRFLOW_VAR_RESUME_EXAMPLE_MAPPED_FAIL", "false")
    outcome = resume(DAG_ID, dr.run_id)
    assert run_existing_run(DAG_ID, outcome.dag_run_id) == "success"
    tries = {
        i: tries for i, (_state, tries) in map_states(DAG_ID, outcome.dag_run_id, "load_partition").items()
    }
    assert tries == {0: 0, 1: 0, 2: 0, 3: 1, 4: 0}
    assert xcom_value(DAG_ID, outcome.dag_run_id, "summarize") == {
        "partitions": ["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04", "2026-01-05"],
        "rows": 515,
    }

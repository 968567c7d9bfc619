"""OpenLineage events of a resumed run (the provider's ``airflowResume`` facet), on the shared stack."""

from __future__ import annotations

import json

import pytest

from tests.e2e.runs import API, q, unique_logical_date, xcom_value
from tests.stack_fixtures import OPENLINEAGE_EVENTS
from tools.airflow_stack import wait_for

pytest.importorskip("airflow.providers.openlineage", reason="the [openlineage] extra is not installed")

pytestmark = pytest.mark.e2e

DAG_ID = "resume_test_lineage"


def events(stack) -> list[dict]:
    path = stack.home / OPENLINEAGE_EVENTS
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def airflow_run_id(event: dict) -> str | None:
    """The Airflow DAG run an OpenLineage event belongs to (task events: ``airflow``, DAG events:
    ``airflowDagRun`` facet)."""
    facets = event["run"]["facets"]
    facet = facets.get("airflow") or facets.get("airflowDagRun") or {}
    return facet.get("dagRun", {}).get("run_id")


def of_run(all_events: list[dict], run_id: str, job: str) -> dict[str, dict]:
    """The events of one job (``<dag>`` or ``<dag>.<task>``) of one Airflow run, by event type."""
    return {e["eventType"]: e for e in all_events if e["job"]["name"] == job and airflow_run_id(e) == run_id}


def test_a_resumed_runs_task_events_carry_the_resume_facet_and_ids_of_their_own(stack):
    with stack.variables(resume_test_lineage_fail="true"):
        # A logical date: the resumed run's tasks are shown it, and OpenLineage derives ids from it.
        logical_date = unique_logical_date()
        failed = stack.trigger(DAG_ID, logical_date=logical_date)
        assert stack.wait_for_run(DAG_ID, failed) == "failed"
        stack.set_variable("resume_test_lineage_fail", "false")
        with stack.client() as c:
            # Resumed with an input changed: the facet says which (without a change it has no
            # changedInputs: tests/integration/test_lineage.py).
            resp = c.post(
                f"{API}/dags/{DAG_ID}/dagRuns/{q(failed)}/resume", json={"params": {"table": "orders_v2"}}
            )
            assert resp.status_code == 201, resp.text
            resumed = resp.json()["dag_run_id"]
        assert stack.wait_for_run(DAG_ID, resumed) == "success"

    # The task's code saw the original run's logical date, also on the run object listeners saw otherwise.
    seen = xcom_value(stack, DAG_ID, resumed, "load")
    ds_nodash = logical_date[:10].replace("-", "")
    assert seen["logical_date"] == seen["dag_run_logical_date"] == logical_date
    assert (seen["ds_nodash"], seen["task_instance_key_str"]) == (ds_nodash, f"{DAG_ID}__load__{ds_nodash}")

    def all_written():
        found = events(stack)
        done = of_run(found, resumed, DAG_ID).get("COMPLETE") and of_run(found, failed, DAG_ID).get("FAIL")
        return done and found

    found = wait_for(all_written, timeout=60, what="the DAG run events of both runs written")
    failed_load = of_run(found, failed, f"{DAG_ID}.load")
    resumed_load = of_run(found, resumed, f"{DAG_ID}.load")
    assert set(failed_load) == {"START", "FAIL"} and set(resumed_load) == {"START", "COMPLETE"}

    # The failed run is a normal run: none of its events carries the facet.
    failed_task_events = [e for e in found if airflow_run_id(e) == failed]
    assert failed_task_events and not [e for e in failed_task_events if "airflowResume" in e["run"]["facets"]]
    # extract is restored in the resumed run, not run: it has no events there.
    assert of_run(found, resumed, f"{DAG_ID}.extract") == {}

    failed_dag_run = of_run(found, failed, DAG_ID)["START"]["run"]["runId"]
    resumed_dag_run = of_run(found, resumed, DAG_ID)["START"]["run"]["runId"]
    for event in resumed_load.values():
        run = event["run"]
        # Ids of its own, and the resumed DAG run as its parent...
        assert run["runId"] != failed_load["START"]["run"]["runId"]
        assert run["facets"]["parent"]["run"]["runId"] == resumed_dag_run != failed_dag_run
        # ...linked to the failed run by the facet.
        facet = run["facets"]["airflowResume"]
        assert facet["_schemaURL"].startswith("https://openlineage.io/spec/")
        assert facet["failedRun"] == {
            "dagId": DAG_ID,
            "dagRunId": failed,
            "openlineageRunId": failed_load["START"]["run"]["runId"],
            "openlineageDagRunId": failed_dag_run,
        }
        assert facet["rootRun"] == {"dagId": DAG_ID, "dagRunId": failed}
        assert facet["resumeCount"] == 1
        assert facet["resumePoint"] == "load"
        assert facet["restoredTasks"] == ["extract"]
        assert facet["kind"] == "manual"
        assert facet["changedInputs"] == [
            {"param": "table", "from": "orders", "to": "orders_v2", "source": "params"}
        ]

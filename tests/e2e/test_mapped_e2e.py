"""
Mapped steps (``.expand``) in a linear DAG, against a real api-server, scheduler and dag-processor.

- a run failing at one map index is resumable through the REST API with a plan per map index; the
  resumed run runs only that index again, keeps the others (not run, their XComs copied) and the
  downstream step sees every result in map-index order;
- a DAG changed between the failure and the resume so that a mapped step maps over another number of
  literal values, or is not mapped any more, is refused as ``structure_changed`` with the change named.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.runs import q, refused, resumed, verdict, write_dag, xcom_value

pytestmark = pytest.mark.e2e

MAPPED = "resume_test_mapped"


# --- helpers ----------------------------------------------------------------------------------------


def finished(stack, dag_id: str, run_id: str) -> str:
    """The run's final state; for a failed run, its task instances come with the assertion message."""
    state = stack.wait_for_run(dag_id, run_id, timeout=300)
    if state == "failed":
        for (task_id, map_index), ti in sorted(map_indexes(stack, dag_id, run_id).items()):
            print(f"  {task_id}[{map_index}]: {ti['state']} (try {ti['try_number']})")
    return state


def map_indexes(stack, dag_id: str, run_id: str) -> dict[tuple[str, int], dict[str, Any]]:
    """(task_id, map_index) -> task instance of a run, as the REST API lists them (-1: not mapped)."""
    with stack.client() as c:
        resp = c.get(f"/api/v2/dags/{dag_id}/dagRuns/{q(run_id)}/taskInstances", params={"limit": 100})
    assert resp.status_code == 200, resp.text
    return {(ti["task_id"], ti["map_index"]): ti for ti in resp.json()["task_instances"]}


# Release set: mapped steps, the main path.
@pytest.mark.release
def test_a_failed_map_index_is_the_only_one_run_again(stack, tmp_path):
    ledger = tmp_path / "ledger.txt"
    with stack.variables(
        resume_test_ledger=str(ledger), resume_test_mapped_fail="true", resume_test_mapped_fail_index="3"
    ):
        run_id = stack.trigger(MAPPED)
        assert stack.wait_for_run(MAPPED, run_id) == "failed"
        tis = map_indexes(stack, MAPPED, run_id)
        assert {i: tis[("square", i)]["state"] for i in range(5)} == {
            0: "success",
            1: "success",
            2: "success",
            3: "failed",
            4: "success",
        }

        body = verdict(stack, MAPPED, run_id)
        assert body["resumable"] is True, body
        assert body["failed_task_id"] == "square" and body["resume_task_id"] == "square", body
        steps = body["plan"]["tasks"]
        assert [(s["task_id"], s["action"], s["mapped"]) for s in steps] == [
            ("numbers", "restored", False),
            ("square", "run", True),
            ("total", "run", False),
            ("report", "run", False),
        ]
        square = next(s for s in steps if s["task_id"] == "square")
        assert square["resume_point"] is True
        assert [(m["map_index"], m["action"], m["state"]) for m in square["map_indexes"]] == [
            (0, "restored", "success"),
            (1, "restored", "success"),
            (2, "restored", "success"),
            (3, "run", "failed"),
            (4, "restored", "success"),
        ]

        stack.set_variable("resume_test_mapped_fail", "false")
        before = len(ledger.read_text().split())
        new_run = resumed(stack, MAPPED, run_id)
        assert new_run.startswith(f"resume__{run_id}__1__"), new_run
        assert finished(stack, MAPPED, new_run) == "success"
        executed = ledger.read_text().split()[before:]

    # Only square[3] ran again (then the steps after it); the other indexes are kept, not run.
    assert executed == ["square[3]", "total", "report"], executed
    tis = map_indexes(stack, MAPPED, new_run)
    assert {i: (tis[("square", i)]["state"], tis[("square", i)]["try_number"]) for i in range(5)} == {
        0: ("success", 0),
        1: ("success", 0),
        2: ("success", 0),
        3: ("success", 1),
        4: ("success", 0),
    }
    assert (tis[("numbers", -1)]["state"], tis[("numbers", -1)]["try_number"]) == ("success", 0)
    assert tis[("total", -1)]["try_number"] == 1 and tis[("report", -1)]["try_number"] == 1
    # The kept indexes' XComs were copied into the new run.
    assert [xcom_value(stack, MAPPED, new_run, "square", map_index=i) for i in range(5)] == [1, 4, 9, 16, 25]
    assert xcom_value(stack, MAPPED, new_run, "square", "seen", map_index=0) == "x=1"
    # The downstream step saw every index's result, in map-index order.
    assert xcom_value(stack, MAPPED, new_run, "total") == {"values": [1, 4, 9, 16, 25], "sum": 55}
    assert xcom_value(stack, MAPPED, new_run, "report")["seen"] == [f"x={x}" for x in range(1, 6)]


LITERAL_DAG = """
from airflow.sdk import DAG, Variable, task

with DAG("resume_test_mapped_literal", schedule=None, params={"resume": True}):

    @task
    def first():
        return "ready"

    @task
    def step(x: int):
        if Variable.get("resume_test_mapped_literal_fail", default="true") == "true" and x == 2:
            raise ValueError("step fails on purpose at x=2")
        return x * 10

    @task
    def last(values):
        return list(values)

    ready = first()
    __STEP__
    ready >> values
    last(values)
"""

MAPPED_OVER = "values = step.expand(x=__VALUES__)"
NOT_MAPPED = "values = step(x=1)"


def literal_dag(step: str) -> str:
    return LITERAL_DAG.replace("__STEP__", step)


def test_a_mapped_step_changed_after_the_failure_is_refused_as_structure_changed(stack):
    dag = "resume_test_mapped_literal"
    with stack.variables(resume_test_mapped_literal_fail="true"):
        write_dag(stack, dag, literal_dag(MAPPED_OVER.replace("__VALUES__", "[1, 2, 3]")))
        run_id = stack.trigger(dag)
        assert stack.wait_for_run(dag, run_id) == "failed"
        body = verdict(stack, dag, run_id)
        assert body["resumable"] is True, body
        square = next(s for s in body["plan"]["tasks"] if s["task_id"] == "step")
        assert [(m["map_index"], m["action"]) for m in square["map_indexes"]] == [
            (0, "restored"),
            (1, "run"),
            (2, "restored"),
        ]

        # The literal list got longer: the kept map indexes would not be the run's any more.
        write_dag(stack, dag, literal_dag(MAPPED_OVER.replace("__VALUES__", "[1, 2, 3, 4]")))
        refused(
            stack,
            dag,
            run_id,
            "structure_changed",
            "task 'step' now maps over 4 values; the run mapped it over 3",
        )

        # The step is not mapped any more.
        write_dag(stack, dag, literal_dag(NOT_MAPPED))
        refused(stack, dag, run_id, "structure_changed", "task 'step' stopped being mapped")

        # Back as the run had it: resumable again, and the resume runs only the failed index.
        write_dag(stack, dag, literal_dag(MAPPED_OVER.replace("__VALUES__", "[1, 2, 3]")))
        assert verdict(stack, dag, run_id)["resumable"] is True
        stack.set_variable("resume_test_mapped_literal_fail", "false")
        new_run = resumed(stack, dag, run_id)
        assert finished(stack, dag, new_run) == "success"
    tis = map_indexes(stack, dag, new_run)
    assert [tis[("step", i)]["try_number"] for i in range(3)] == [0, 1, 0]
    assert xcom_value(stack, dag, new_run, "last") == [10, 20, 30]

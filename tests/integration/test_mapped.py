"""Mapped steps (``.expand``) in a linear DAG: capture per map index, verdict and plan, resume."""

from __future__ import annotations

import pytest

from tests.helpers import log_folder, read_json, run_dag, run_existing_run, unique_logical_date, xcom_value
from tests.integration.test_resume import assess, resume

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("airflow_db")]


def map_states(dag_id: str, run_id: str, task_id: str) -> dict[int, tuple[str | None, int]]:
    """map_index -> (state, try_number) of one task of a run."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(TaskInstance.map_index, TaskInstance.state, TaskInstance.try_number).where(
                TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id, TaskInstance.task_id == task_id
            )
        ).all()
    return {index: (state, tries) for index, state, tries in rows}


def test_a_failed_map_index_is_the_only_one_run_again(monkeypatch, ledger):
    dr = run_dag("resume_test_mapped", logical_date=unique_logical_date())
    assert dr.state == "failed"
    assert sorted(ledger()) == sorted(["numbers", *(f"square[{i}]" for i in range(5))])
    # One state file per map index attempt, beside the index's log.
    folder = log_folder() / "dag_id=resume_test_mapped" / f"run_id={dr.run_id}" / "task_id=square"
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.resume.json"))
    assert files == [f"map_index={i}/attempt=1.resume.json" for i in range(5)]
    failed_record = read_json(folder / "map_index=3" / "attempt=1.resume.json")
    assert failed_record["identity"]["map_index"] == 3
    assert failed_record["structure"]["mapped"] == ["square"]
    assert "failed on purpose at map index 3" in failed_record["failure"]["message"]

    verdict = assess("resume_test_mapped", dr.run_id)
    assert verdict.resumable, verdict.reason
    assert verdict.failed_task_id == "square"
    steps = {s.task_id: s for s in verdict.plan.tasks}
    assert [(s.task_id, s.action, s.mapped) for s in verdict.plan.tasks] == [
        ("numbers", "restored", False),
        ("square", "run", True),
        ("total", "run", False),
        ("report", "run", False),
    ]
    assert [(m.map_index, m.action, m.state) for m in steps["square"].map_indexes] == [
        (0, "restored", "success"),
        (1, "restored", "success"),
        (2, "restored", "success"),
        (3, "run", "failed"),
        (4, "restored", "success"),
    ]

    monkeypatch.setenv("AIRFLOW_VAR_RESUME_TEST_MAPPED_FAIL", "false")
    before = len(ledger())
    outcome = resume("resume_test_mapped", dr.run_id)
    assert run_existing_run("resume_test_mapped", outcome.dag_run_id) == "success"
    assert ledger()[before:] == ["square[3]", "total", "report"]
    states = map_states("resume_test_mapped", outcome.dag_run_id, "square")
    assert states == {
        0: ("success", 0),
        1: ("success", 0),
        2: ("success", 0),
        3: ("success", 1),
        4: ("success", 0),
    }
    # The downstream step got every index's result in map-index order, as a run without failure would.
    assert xcom_value("resume_test_mapped", outcome.dag_run_id, "total") == {
        "values": [1, 4, 9, 16, 25],
        "sum": 55,
    }
    assert xcom_value("resume_test_mapped", outcome.dag_run_id, "report")["seen"] == [
        "x=1",
        "x=2",
        "x=3",
        "x=4",
        "x=5",
    ]


def test_mapped_steps_before_the_resume_point_are_restored_with_every_index(monkeypatch, ledger):
    dr = run_dag("resume_test_mapped_before", logical_date=unique_logical_date())
    assert dr.state == "failed"
    verdict = assess("resume_test_mapped_before", dr.run_id)
    assert verdict.resumable, verdict.reason
    steps = {s.task_id: s for s in verdict.plan.tasks}
    assert [(s.task_id, s.action) for s in verdict.plan.tasks] == [
        ("numbers", "restored"),
        ("double", "restored"),
        ("echo", "restored"),
        ("collect", "run"),
    ]
    assert [m.map_index for m in steps["double"].map_indexes] == [0, 1, 2]
    assert [m.map_index for m in steps["echo"].map_indexes] == [0, 1]

    monkeypatch.setenv("AIRFLOW_VAR_RESUME_TEST_MAPPED_FAIL", "false")
    before = len(ledger())
    outcome = resume("resume_test_mapped_before", dr.run_id)
    assert run_existing_run("resume_test_mapped_before", outcome.dag_run_id) == "success"
    assert ledger()[before:] == ["collect"]
    assert map_states("resume_test_mapped_before", outcome.dag_run_id, "double") == {
        i: ("success", 0) for i in range(3)
    }
    assert map_states("resume_test_mapped_before", outcome.dag_run_id, "echo") == {
        i: ("success", 0) for i in range(2)
    }
    assert xcom_value("resume_test_mapped_before", outcome.dag_run_id, "collect") == {
        "double": [22, 44, 66],
        "echo": ["a", "b"],
    }


def test_a_mapped_run_resumed_and_failing_again_resumes_again(monkeypatch, ledger):
    monkeypatch.setenv("AIRFLOW_VAR_RESUME_TEST_MAPPED_FAIL_INDEX", "1")
    dr = run_dag("resume_test_mapped", logical_date=unique_logical_date())
    assert dr.state == "failed"
    first = resume("resume_test_mapped", dr.run_id)
    assert run_existing_run("resume_test_mapped", first.dag_run_id) == "failed"
    assert map_states("resume_test_mapped", first.dag_run_id, "square")[1] == ("failed", 1)

    verdict = assess("resume_test_mapped", first.dag_run_id)
    assert verdict.resumable, verdict.reason
    square = next(s for s in verdict.plan.tasks if s.task_id == "square")
    assert [m.action for m in square.map_indexes] == ["restored", "run", "restored", "restored", "restored"]
    monkeypatch.setenv("AIRFLOW_VAR_RESUME_TEST_MAPPED_FAIL", "false")
    second = resume("resume_test_mapped", first.dag_run_id)
    before = len(ledger())
    assert run_existing_run("resume_test_mapped", second.dag_run_id) == "success"
    assert ledger()[before:] == ["square[1]", "total", "report"]
    assert xcom_value("resume_test_mapped", second.dag_run_id, "total")["sum"] == 55


def test_a_mapped_step_over_a_mapped_steps_results_resumes_with_its_skipped_index_kept(monkeypatch, ledger):
    dr = run_dag("resume_test_mapped_twice", logical_date=unique_logical_date())
    assert dr.state == "failed"
    verdict = assess("resume_test_mapped_twice", dr.run_id)
    assert verdict.resumable, verdict.reason
    point = next(s for s in verdict.plan.tasks if s.resume_point)
    assert point.task_id == "plus_one"
    assert [(m.map_index, m.action, m.state) for m in point.map_indexes] == [
        (0, "restored", "success"),
        (1, "restored", "success"),
        (2, "run", "failed"),
        (3, "restored", "skipped"),
        (4, "restored", "success"),
    ]
    monkeypatch.setenv("AIRFLOW_VAR_RESUME_TEST_MAPPED_FAIL", "false")
    before = len(ledger())
    outcome = resume("resume_test_mapped_twice", dr.run_id)
    assert run_existing_run("resume_test_mapped_twice", outcome.dag_run_id) == "success"
    assert ledger()[before:] == ["plus_one[2]", "total"]
    assert map_states("resume_test_mapped_twice", outcome.dag_run_id, "square") == {
        i: ("success", 0) for i in range(5)
    }
    assert map_states("resume_test_mapped_twice", outcome.dag_run_id, "plus_one")[3] == ("skipped", 0)
    assert xcom_value("resume_test_mapped_twice", outcome.dag_run_id, "total") == [2, 5, 10, 26]

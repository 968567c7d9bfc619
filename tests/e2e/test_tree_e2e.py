"""
The tree end to end on the shared stack: a parent run whose trigger step waits for a child run.

- parent + child + grandchild (deferrable trigger steps, the triggerer waits): resuming the parent
  resumes the child and the grandchild at their failed tasks; nothing before them runs again, each
  level's trigger step waits for the resumed run below it, and a second request creates nothing;
- the example pair (a polling trigger step): the child failing in the middle is resumed there, its
  earlier task not run again, and the parent's step names the resumed child run;
- a child whose DAG's structure changed refuses the parent (``child_not_resumable``, the child's reason
  given); with ``rerun_children`` the step triggers a fresh full child run.
"""

from __future__ import annotations

import pytest

from tests.e2e.runs import post_resume, q, refused, resume_runs, resume_url, verdict, xcom_value

pytestmark = pytest.mark.e2e

PARENT = "resume_test_tree_parent"


def executed(ledger) -> list[str]:
    return ledger.read_text().split() if ledger.exists() else []


# Release set: TriggerDagRunOperator, its trigger and the Task SDK's run states differ by release.
@pytest.mark.release
def test_a_parent_resumes_its_child_and_grandchild_at_their_failed_tasks(stack, tmp_path):
    ledger = tmp_path / "ledger.txt"
    with stack.variables(resume_test_ledger=str(ledger), resume_test_tree_fail="grandchild.g_last"):
        parent = stack.trigger(PARENT)
        assert stack.wait_for_run(PARENT, parent, timeout=300) == "failed"
        assert executed(ledger) == [
            "parent.p_first",
            "child.c_first",
            "child.c_middle",
            "grandchild.g_first",
            "grandchild.g_last",
        ]
        body = verdict(stack, PARENT, parent)
        assert body["resumable"] is True, body
        child = body["plan"]["tasks"][1]["child"]
        assert (child["dag_id"], child["action"]) == ("resume_test_tree_child", "resume"), child
        assert [(s["task_id"], s["action"]) for s in child["plan"]["tasks"]] == [
            ("c_first", "restored"),
            ("c_middle", "restored"),
            ("trigger_grandchild", "run"),
            ("c_last", "run"),
        ]
        grandchild = child["plan"]["tasks"][2]["child"]
        assert grandchild["plan"]["resume_task_id"] == "g_last", grandchild

        stack.set_variable("resume_test_tree_fail", "none")
        before = len(executed(ledger))
        created = post_resume(stack, PARENT, parent)
        assert created.status_code == 201, created.text
        again = post_resume(stack, PARENT, parent)
        assert again.status_code == 200 and again.json() == {**created.json(), "created": False}
        new_run = created.json()["dag_run_id"]
        [attached] = created.json()["child_runs"]
        assert stack.wait_for_run(PARENT, new_run, timeout=300) == "success"
        ran = executed(ledger)[before:]

    assert ran == ["grandchild.g_last", "child.c_last", "parent.p_last"], ran
    assert xcom_value(stack, PARENT, new_run, "p_last") == attached["dag_run_id"]
    lineage = verdict(stack, "resume_test_tree_child", attached["dag_run_id"])["lineage"]
    assert lineage["parent_tree_run"]["run_id"] == new_run
    assert lineage["parent_run_id"] == child["dag_run_id"]
    # Exactly one resumed run at each level, although the parent was asked twice.
    assert resumed_runs(stack, PARENT, parent) == [new_run]
    assert resumed_runs(stack, "resume_test_tree_child", child["dag_run_id"]) == [attached["dag_run_id"]]
    assert len(resumed_runs(stack, "resume_test_tree_grandchild", grandchild["dag_run_id"])) == 1


def resumed_runs(stack, dag_id: str, root: str) -> list[str]:
    return [
        r["dag_run_id"] for r in stack.dag_runs(dag_id) if r["dag_run_id"].startswith(f"resume__{root}__")
    ]


def test_the_example_child_failing_in_the_middle_is_resumed_there(stack):
    with stack.variables(resume_example_child_fail="true"):
        parent = stack.trigger("resume_example_parent")
        assert stack.wait_for_run("resume_example_parent", parent, timeout=300) == "failed"
        body = verdict(stack, "resume_example_parent", parent)
        assert body["resumable"] is True and body["failed_task_id"] == "run_child", body
        child = body["plan"]["tasks"][1]["child"]
        assert [(s["task_id"], s["action"]) for s in child["plan"]["tasks"]] == [
            ("extract", "restored"),
            ("transform", "run"),
            ("load", "run"),
        ]
        stack.set_variable("resume_example_child_fail", "false")
        # The operator may resume the parent's runs, but not trigger (nor read) the child DAG's: a
        # resume that would resume the child is refused, naming it, and creates nothing.
        with stack.client("operator") as operator:
            forbidden = operator.post(resume_url("resume_example_parent", parent) + "/resume")
        assert forbidden.status_code == 403, forbidden.text
        assert "resume_example_child" in forbidden.json()["detail"]
        assert resume_runs(stack, "resume_example_parent", parent) == []
        created = post_resume(stack, "resume_example_parent", parent)
        assert created.status_code == 201, created.text
        new_run = created.json()["dag_run_id"]
        [attached] = created.json()["child_runs"]
        assert stack.wait_for_run("resume_example_parent", new_run, timeout=300) == "success"

    child_tis = stack.task_instances("resume_example_child", q(attached["dag_run_id"]))
    assert child_tis["extract"]["try_number"] == 0, child_tis["extract"]  # restored, not run again
    assert child_tis["transform"]["state"] == child_tis["load"]["state"] == "success"
    # The step waited for the resumed child run and names it; it triggered no other child run.
    assert xcom_value(stack, "resume_example_parent", new_run, "publish") == {
        "child_run": attached["dag_run_id"]
    }
    assert (
        xcom_value(stack, "resume_example_child", attached["dag_run_id"], "extract")[0]["batch"] == "nightly"
    )


CHANGING = """
import pendulum
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG, Variable, task

with DAG("resume_e2e_tree_child", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
         params={"resume": True}):

    @task
    def first():
        return 1

    @task
    def second(value):
        if Variable.get("resume_e2e_tree_fail", default="true") == "true":
            raise ValueError("second failed on purpose")
        return value + 1
__EXTRA__
with DAG("resume_e2e_tree_parent", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
         params={"resume": True}):
    TriggerDagRunOperator(task_id="run_child", trigger_dag_id="resume_e2e_tree_child",
                          wait_for_completion=True, poke_interval=1)
"""
CHAIN = "\n    second(first())\n"
CHAIN_PLUS = "\n    @task\n    def third():\n        return 3\n\n    second(first()) >> third()\n"


def test_a_child_whose_structure_changed_refuses_until_children_are_rerun(stack):
    dags = ("resume_e2e_tree_child", "resume_e2e_tree_parent")
    with stack.variables(resume_e2e_tree_fail="true"):
        stack.write_dag_file("resume_e2e_tree", CHANGING.replace("__EXTRA__", CHAIN), dag_ids=dags)
        parent = stack.trigger("resume_e2e_tree_parent")
        assert stack.wait_for_run("resume_e2e_tree_parent", parent, timeout=300) == "failed"
        child_run = verdict(stack, "resume_e2e_tree_parent", parent)["plan"]["tasks"][0]["child"][
            "dag_run_id"
        ]

        stack.write_dag_file("resume_e2e_tree", CHANGING.replace("__EXTRA__", CHAIN_PLUS), dag_ids=(dags[0],))
        body = refused(stack, "resume_e2e_tree_parent", parent, "child_not_resumable", child_run, "'third'")
        assert body["plan"]["tasks"][0]["child"]["reason_code"] == "structure_changed"
        # Who may not read the child DAG's runs sees which child run blocks the resume and why in a
        # code, not its reason or plan (they name the child's tasks).
        with stack.client("operator") as operator:
            shown = operator.get(resume_url("resume_e2e_tree_parent", parent)).json()
            shown_refusal = operator.post(resume_url("resume_e2e_tree_parent", parent) + "/resume")
        child_shown = shown["plan"]["tasks"][0]["child"]
        assert (child_shown["dag_run_id"], child_shown["reason_code"], child_shown["plan"]) == (
            child_run,
            "structure_changed",
            None,
        )
        assert shown_refusal.status_code == 409, shown_refusal.text
        hidden = "Details hidden: you may not read runs of DAG 'resume_e2e_tree_child'."
        for text in (child_shown["reason"], shown["reason"], shown_refusal.json()["detail"]):
            assert hidden in text and "'third'" not in text, text

        stack.set_variable("resume_e2e_tree_fail", "false")
        created = post_resume(stack, "resume_e2e_tree_parent", parent, {"rerun_children": True})
        assert created.status_code == 201, created.text
        assert created.json()["child_runs"] == []
        new_run = created.json()["dag_run_id"]
        assert stack.wait_for_run("resume_e2e_tree_parent", new_run, timeout=300) == "success"

    fresh = xcom_value(stack, "resume_e2e_tree_parent", new_run, "run_child", key="trigger_run_id")
    assert fresh != child_run
    tis = stack.task_instances("resume_e2e_tree_child", q(fresh))
    # A fresh full child run of the changed DAG: every task ran.
    assert {task_id: ti["try_number"] for task_id, ti in tis.items()} == {"first": 1, "second": 1, "third": 1}


def test_a_mapped_trigger_step_resumes_only_its_failed_indexes_child_run(stack, tmp_path):
    ledger = tmp_path / "ledger.txt"
    dag = "resume_test_tree_mapped"
    with stack.variables(resume_test_ledger=str(ledger), resume_test_tree_fail_n="1"):
        parent = stack.trigger(dag)
        assert stack.wait_for_run(dag, parent, timeout=300) == "failed"
        indexes = verdict(stack, dag, parent)["plan"]["tasks"][1]["map_indexes"]
        assert [(m["map_index"], m["action"], m["child"] is not None) for m in indexes] == [
            (0, "restored", False),
            (1, "run", True),
            (2, "restored", False),
        ]
        stack.set_variable("resume_test_tree_fail_n", "none")
        before = len(executed(ledger))
        created = post_resume(stack, dag, parent)
        assert created.status_code == 201, created.text
        [attached] = created.json()["child_runs"]
        assert (attached["task_id"], attached["map_index"]) == ("trigger_leaves", 1)
        new_run = created.json()["dag_run_id"]
        assert stack.wait_for_run(dag, new_run, timeout=300) == "success"
        ran = executed(ledger)[before:]

    assert ran == ["leaf.l_check[1]", "mapped.m_last"], ran
    kept = [
        xcom_value(stack, dag, parent, "trigger_leaves", key="trigger_run_id", map_index=i) for i in (0, 2)
    ]
    assert xcom_value(stack, dag, new_run, "m_last") == [kept[0], attached["dag_run_id"], kept[1]]

"""What a user who may not read a child DAG's runs is shown of a parent run's verdict (``tree_access``)."""

from __future__ import annotations

from airflow_resume_provider.models import ChildStep, MapIndexStep, Plan, PlanStep, Verdict
from airflow_resume_provider.tree_access import visible_children, visible_verdict

GRANDCHILD_REASON = "DAG 'grandchild', run 'g1': no state file for task 'g_secret_step'."
CHILD_REASON = (
    f"DAG 'child', run 'c1': the child run 'g1' of DAG 'grandchild' cannot be resumed: {GRANDCHILD_REASON}"
)
PARENT_REASON = f"DAG 'parent', run 'p1': the child run 'c1' of DAG 'child' cannot be resumed: {CHILD_REASON}"


def plan(*steps: PlanStep) -> Plan:
    return Plan(resume_task_id=steps[-1].task_id, tasks=list(steps))


def trigger_step(child: ChildStep | None = None, map_children: list[ChildStep] | None = None) -> PlanStep:
    return PlanStep(
        task_id="run_child",
        task_type="TriggerDagRunOperator",
        action="run",
        resume_point=True,
        mapped=map_children is not None,
        map_indexes=[
            MapIndexStep(map_index=i, action="run", state="failed", child=c)
            for i, c in enumerate(map_children or [])
        ],
        child=child,
    )


def tree() -> Verdict:
    grandchild = ChildStep(
        dag_id="grandchild",
        dag_run_id="g1",
        resumable=False,
        reason_code="state_missing",
        reason=GRANDCHILD_REASON,
        action="resume",
        plan=plan(
            PlanStep(task_id="g_secret_step", task_type="PythonOperator", action="run", resume_point=True)
        ),
    )
    child = ChildStep(
        dag_id="child",
        dag_run_id="c1",
        resumable=False,
        reason_code="child_not_resumable",
        reason=CHILD_REASON,
        action="resume",
        plan=plan(trigger_step(grandchild)),
    )
    return Verdict(
        dag_id="parent",
        dag_run_id="p1",
        resumable=False,
        reason_code="child_not_resumable",
        reason=PARENT_REASON,
        failed_task_id="run_child",
        resume_task_id="run_child",
        failure=None,
        plan=plan(trigger_step(child)),
        resumed_run_id=None,
        lineage={},
    )


def test_a_reader_of_every_dag_sees_the_verdict_unchanged():
    verdict = tree()
    assert visible_verdict(verdict, lambda dag_id: True) is verdict


def test_an_unreadable_child_keeps_its_ids_and_verdict_but_not_its_reason_or_plan():
    shown = visible_verdict(tree(), lambda dag_id: dag_id == "parent")
    child = shown.plan.tasks[0].child
    assert (child.dag_id, child.dag_run_id, child.resumable, child.reason_code, child.plan) == (
        "child",
        "c1",
        False,
        "child_not_resumable",
        None,
    )
    assert child.reason == "Details hidden: you may not read runs of DAG 'child'."
    assert (
        shown.reason
        == "DAG 'parent', run 'p1': the child run 'c1' of DAG 'child' cannot be resumed: " + child.reason
    )
    assert "g_secret_step" not in shown.model_dump_json()


def test_an_unreadable_grandchild_is_hidden_in_every_reason_that_quotes_it():
    shown = visible_verdict(tree(), lambda dag_id: dag_id != "grandchild")
    child = shown.plan.tasks[0].child
    grandchild = child.plan.tasks[0].child
    assert grandchild.plan is None and grandchild.reason_code == "state_missing"
    note = "Details hidden: you may not read runs of DAG 'grandchild'."
    assert grandchild.reason == note
    assert child.reason.endswith(note) and shown.reason.endswith(note)
    assert "g_secret_step" not in shown.model_dump_json()


def test_mapped_trigger_steps_and_bulk_results_hide_the_same_way():
    readable = ChildStep(dag_id="open", dag_run_id="o1", resumable=True, action="resume", reason=None)
    secret = ChildStep(
        dag_id="closed",
        dag_run_id="s1",
        resumable=False,
        reason_code="state_missing",
        reason="task 'x' lost",
        action="resume",
    )
    verdict = tree().model_copy(
        update={"plan": plan(trigger_step(map_children=[readable, secret])), "reason": "it: task 'x' lost"}
    )
    shown = visible_verdict(verdict, lambda dag_id: dag_id != "closed")
    indexes = shown.plan.tasks[0].map_indexes
    assert indexes[0].child == readable
    assert indexes[1].child.reason == "Details hidden: you may not read runs of DAG 'closed'."
    assert shown.reason == "it: Details hidden: you may not read runs of DAG 'closed'."

    children, reason = visible_children(
        [readable, secret], "refused: task 'x' lost", lambda dag_id: dag_id != "closed"
    )
    assert children[0] == readable and children[1].plan is None
    assert reason == "refused: Details hidden: you may not read runs of DAG 'closed'."

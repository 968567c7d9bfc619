"""
The tree without a database: the verdict and plan of a run whose resume point triggers a child run, the
children a resume resumes first, what the resumed run's trigger step waits for, and how it waits.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from airflow_resume_provider import attach, tree_display, tree_resume
from airflow_resume_provider.exceptions import ChildPermissionError
from airflow_resume_provider.models import ChildStep, Plan, PlanStep, ReasonCode
from airflow_resume_provider.resumability import decide
from airflow_resume_provider.run_record import ChildAttachment, RunRecord
from airflow_resume_provider.tree import PendingChild, PendingTree, attachments, pending_children
from tests.unit.builders import facts, refused

CHILD_PLAN = Plan(
    resume_task_id="c_middle",
    tasks=[
        PlanStep(task_id="c_first", task_type="PythonOperator", action="restored"),
        PlanStep(task_id="c_middle", task_type="PythonOperator", action="run", resume_point=True),
    ],
)


def child(**overrides) -> ChildStep:
    values = dict(
        dag_id="child_dag", dag_run_id="child_run_1", resumable=True, action="resume", plan=CHILD_PLAN
    )
    values.update(overrides)
    return ChildStep(**values)


def test_the_resume_point_carries_its_child_run_and_its_plan():
    verdict = decide(facts(children={-1: child()}))
    assert verdict.resumable
    point = {s.task_id: s for s in verdict.plan.tasks}["transform"]
    assert point.child.dag_run_id == "child_run_1"
    assert [s.task_id for s in point.child.plan.tasks] == ["c_first", "c_middle"]
    # Only the resume point triggers a child run worth resuming: the other steps carry none.
    assert [s.task_id for s in verdict.plan.tasks if s.child is not None] == ["transform"]
    assert verdict.to_dict()["plan"]["tasks"][1]["child"]["dag_id"] == "child_dag"


def test_a_child_that_cannot_be_resumed_refuses_with_its_reason():
    reason = "DAG 'child_dag', run 'child_run_1': task 'c_middle' was set to failed by admin"
    unable = child(resumable=False, reason_code=ReasonCode.MANUAL_KILL, reason=reason)
    verdict = decide(facts(children={-1: unable}, child_error=f"the child run cannot be resumed: {reason}"))
    assert "set to failed by admin" in refused(verdict, "child_not_resumable")
    assert verdict.plan.tasks[1].child.reason_code == "manual_kill"


def test_a_resume_resumes_the_children_not_resumed_yet_and_attaches_to_resumed_ones():
    plan = decide(
        facts(children={-1: child()}),
    ).plan
    assert [(p.task_id, p.child.dag_run_id) for p in pending_children(plan)] == [("transform", "child_run_1")]
    assert attachments(plan) == []

    resumed = decide(facts(children={-1: child(resumed_run_id="resume__child_run_1__1__abc")})).plan
    assert pending_children(resumed) == []
    assert attachments(resumed) == [
        ChildAttachment(task_id="transform", dag_id="child_dag", run_id="resume__child_run_1__1__abc")
    ]
    # A child that is rerun in full, or a step that triggers as usual, is neither resumed nor attached.
    for other in (
        child(action="rerun", resumable=False),
        child(action="trigger", dag_run_id=None, plan=None),
    ):
        plan = decide(facts(children={-1: other})).plan
        assert (pending_children(plan), attachments(plan)) == ([], [])


def test_a_mapped_trigger_step_has_a_child_per_index_that_runs():
    states = [(0, "success"), (1, "failed"), (2, "failed")]
    plan = decide(
        facts(point_map_states=states, children={1: child(), 2: child(dag_run_id="child_run_2")})
    ).plan
    indexes = plan.tasks[1].map_indexes
    assert [(m.map_index, m.action, m.child and m.child.dag_run_id) for m in indexes] == [
        (0, "restored", None),
        (1, "run", "child_run_1"),
        (2, "run", "child_run_2"),
    ]
    assert [(p.map_index, p.child.dag_run_id) for p in pending_children(plan)] == [
        (1, "child_run_1"),
        (2, "child_run_2"),
    ]


def test_the_cli_rows_nest_the_child_steps_under_the_trigger_step():
    plan = decide(facts(children={-1: child()})).plan
    rows = [
        (r.depth, r.step.task_id if r.step else tree_display.child_summary(r.child))
        for r in tree_display.tree_rows(plan.tasks)
    ]
    assert rows == [
        (0, "extract"),
        (0, "transform"),
        (1, "run 'child_run_1' of DAG 'child_dag' is resumed at 'c_middle': the step waits for it"),
        (2, "c_first"),
        (2, "c_middle"),
        (0, "load"),
    ]


def test_children_of_a_dag_the_user_may_not_trigger_are_refused_before_anything_is_resumed():
    resumed = []
    pending = PendingTree(new_run_id="resume__p__1__x", children=[PendingChild("transform", -1, child())])
    with pytest.raises(ChildPermissionError, match="child_dag") as err:
        tree_resume.resume_children(
            None,
            "parent_dag",
            pending,
            user="viewer",
            triggered_by="rest_api",
            kind="manual",
            rerun_children=False,
            may_trigger=lambda dag_id: dag_id != "child_dag",
            resume=lambda *a, **k: resumed.append(a),
        )
    assert err.value.status_code == 403
    assert resumed == []


def test_each_child_is_resumed_naming_the_parent_run_to_be():
    calls = []

    def fake_resume(session, dag_id, run_id, **kwargs):
        tree_run = kwargs["parent_tree_run"]
        calls.append((dag_id, run_id, tree_run.run_id, tree_run.task_id, kwargs["delay_seconds"]))
        return SimpleNamespace(dag_run_id="resumed")

    pending = PendingTree(new_run_id="resume__p__1__x", children=[PendingChild("transform", -1, child())])
    tree_resume.resume_children(
        None,
        "parent_dag",
        pending,
        user=None,
        triggered_by="timetable",
        kind="retry",
        delay_seconds=60,
        rerun_children=False,
        may_trigger=None,
        resume=fake_resume,
    )
    # An automatic retry's delay holds for the child too.
    assert calls == [("child_dag", "child_run_1", "resume__p__1__x", "transform", 60)]


# --- the resumed run's trigger step ---------------------------------------------------------------------


class FakeTi:
    def __init__(self, states, map_index=-1):
        self.states = list(states)
        self.map_index = map_index
        self.pushed = {}

    def xcom_push(self, key, value):
        self.pushed[key] = value

    def get_dagrun_state(self, dag_id, run_id):
        return self.states.pop(0)


def operator(**kwargs):
    values = dict(
        task_id="trigger_child",
        wait_for_completion=True,
        deferrable=False,
        poke_interval=0,
        allowed_states=["success"],
        failed_states=["failed"],
    )
    values.update(kwargs)
    task = SimpleNamespace(**values)
    task.execute = lambda context: pytest.fail("the operator triggered a new child run")
    return task


RECORD = RunRecord(
    parent_run_id="p",
    root_run_id="p",
    resume_count=1,
    attach=[ChildAttachment(task_id="trigger_child", dag_id="child_dag", run_id="resumed_child")],
)


def test_the_attached_step_pushes_the_resumed_child_and_succeeds_with_it():
    task, ti = operator(), FakeTi(["queued", "running", "success"])
    context = {"task": task, "ti": ti}
    attach.prepare(context, RECORD)
    task.execute(context)
    assert ti.pushed == {"trigger_run_id": "resumed_child"}
    assert ti.states == []  # it waited until the child run succeeded


def test_states_come_as_the_task_sdks_enums():
    from airflow.sdk.api.datamodels._generated import DagRunState

    task = operator(allowed_states=[DagRunState.SUCCESS], failed_states=[DagRunState.FAILED])
    ti = FakeTi([DagRunState.RUNNING, DagRunState.SUCCESS])
    context = {"task": task, "ti": ti}
    attach.prepare(context, RECORD)
    task.execute(context)
    assert ti.states == []


def test_the_attached_step_fails_with_the_child_run():
    task, ti = operator(), FakeTi(["running", "failed"])
    context = {"task": task, "ti": ti}
    attach.prepare(context, RECORD)
    with pytest.raises(Exception, match="resumed_child"):
        task.execute(context)


def test_without_wait_for_completion_the_step_only_names_the_child_run():
    task, ti = operator(wait_for_completion=False), FakeTi([])
    context = {"task": task, "ti": ti}
    attach.prepare(context, RECORD)
    task.execute(context)
    assert ti.pushed == {"trigger_run_id": "resumed_child"}


def test_a_deferrable_step_defers_on_the_resumed_child_run():
    deferred = {}
    task = operator(deferrable=True, poke_interval=3)
    task.defer = lambda trigger, method_name: deferred.update(trigger=trigger, method=method_name)
    context = {"task": task, "ti": FakeTi(["success"])}
    attach.prepare(context, RECORD)
    task.execute(context)
    assert deferred["method"] == "execute_complete"
    assert deferred["trigger"].run_ids == ["resumed_child"]
    assert deferred["trigger"].dag_id == "child_dag"


def test_other_steps_and_other_map_indexes_run_as_usual():
    for task, ti in ((operator(task_id="other"), FakeTi([])), (operator(), FakeTi([], map_index=2))):
        original = task.execute
        attach.prepare({"task": task, "ti": ti}, RECORD)
        assert task.execute is original


def test_airflow_resume_status_shows_the_child_steps_indented(monkeypatch, capsys):
    import contextlib

    import airflow.utils.session

    from airflow_resume_provider import cli, resume

    verdict = decide(facts(children={-1: child()}))
    seen = {}

    def fake_assess(*args, **kwargs):
        seen.update(kwargs)
        return verdict

    monkeypatch.setattr(airflow.utils.session, "create_session", lambda: contextlib.nullcontext(None))
    monkeypatch.setattr(resume, "assess", fake_assess)
    args = SimpleNamespace(dag_id="etl", run_id="r", from_task=None, output="text", rerun_children=True)
    with pytest.raises(SystemExit) as exit_:
        cli.status_command(args)
    assert exit_.value.code == cli.EXIT_OK
    assert seen["rerun_children"] is True
    cells = [line.split("|")[0].rstrip() for line in capsys.readouterr().out.splitlines() if "|" in line]
    names = (
        "extract",
        "transform",
        "child: run 'child_run_1' of DAG 'child_dag' is resumed",
        "c_first",
        "c_middle",
        "load",
    )
    rows = [next(c for c in cells if c.strip().startswith(name)) for name in names]
    assert [cells.index(r) for r in rows] == sorted(cells.index(r) for r in rows)  # in this order
    # Each level one step further in: the child under its trigger step, its steps under it.
    indents = [len(r) - len(r.lstrip()) for r in rows]
    assert indents == [0, 0, 2, 4, 4, 0]


# --- automatic retries ------------------------------------------------------------------------------------


def test_the_resume_param_asks_automatic_retries_to_rerun_children():
    from airflow_resume_provider.resume_param import parse_settings

    assert parse_settings({"retries": 2}, dag_id="d").rerun_children is False
    assert parse_settings({"retries": 2, "rerun_children": True}, dag_id="d").rerun_children is True


def test_an_automatic_retry_is_not_made_when_the_child_cannot_be_resumed():
    from airflow_resume_provider.resume_param import parse_settings
    from airflow_resume_provider.retry.decision import decide_retry

    reason = "the child run 'child_run_1' of DAG 'child_dag' cannot be resumed: its structure changed"
    verdict = decide(facts(children={-1: child(resumable=False, action="resume")}, child_error=reason))
    decision = decide_retry(parse_settings({"retries": 2}, dag_id="d"), verdict, None)
    assert decision.retry is False
    assert "cannot be resumed: its structure changed" in decision.note

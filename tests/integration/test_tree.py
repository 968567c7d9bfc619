"""The tree: resuming a parent run at a trigger step resumes the failed child run (dag.test-style, in-process)."""

from __future__ import annotations

import itertools

import pytest

from tests.helpers import run_tree, sync_dags, trigger
from tests.integration.test_api_errors import API
from tests.integration.test_resume import _session, assess, resume

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("airflow_db")]

_ids = itertools.count(1)


@pytest.fixture(scope="module", autouse=True)
def serialized_dags(airflow_db):
    sync_dags()


def started(dag_id: str, conf=None) -> str:
    """A new run of ``dag_id`` run to its end with its child runs; returns the run id."""
    run_id = trigger(dag_id, f"tree_{dag_id}_{next(_ids)}", conf)
    run_tree(dag_id, run_id)
    return run_id


def run_record_of(dag_id: str, run_id: str):
    from airflow.models.dagrun import DagRun
    from sqlalchemy import select

    from airflow_resume_provider import run_record

    with _session() as session:
        conf = session.scalar(select(DagRun.conf).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
    return run_record.check(dag_id, run_id, conf).record


def resumed_runs_of(dag_id: str, root: str) -> list[str]:
    """The runs of ``dag_id`` that resume ``root`` (directly or down its chain)."""
    from airflow.models.dagrun import DagRun
    from sqlalchemy import select

    with _session() as session:
        return [
            run_id
            for run_id in session.scalars(select(DagRun.run_id).where(DagRun.dag_id == dag_id))
            if run_id.startswith(f"resume__{root}__")
        ]


def test_a_parent_resumes_its_child_and_grandchild_at_their_failed_tasks(monkeypatch, ledger, client):
    monkeypatch.setenv("AIRFLOW_VAR_RESUME_TEST_TREE_FAIL", "grandchild.g_last")
    parent = started("resume_test_tree_parent")
    assert ledger() == [
        "parent.p_first",
        "child.c_first",
        "child.c_middle",
        "grandchild.g_first",
        "grandchild.g_last",
    ]

    verdict = assess("resume_test_tree_parent", parent)
    assert verdict.resumable, verdict.reason
    assert verdict.failed_task_id == "trigger_child"
    step = {s.task_id: s for s in verdict.plan.tasks}["trigger_child"]
    child = step.child
    assert (child.dag_id, child.resumable, child.action) == ("resume_test_tree_child", True, "resume")
    assert [(s.task_id, s.action) for s in child.plan.tasks] == [
        ("c_first", "restored"),
        ("c_middle", "restored"),
        ("trigger_grandchild", "run"),
        ("c_last", "run"),
    ]
    grandchild = child.plan.tasks[2].child
    assert grandchild.dag_id == "resume_test_tree_grandchild"
    assert [(s.task_id, s.action) for s in grandchild.plan.tasks] == [
        ("g_first", "restored"),
        ("g_last", "run"),
    ]

    monkeypatch.setenv("AIRFLOW_VAR_RESUME_TEST_TREE_FAIL", "")
    from concurrent.futures import ThreadPoolExecutor

    # Concurrent requests (a double click, two schedulers): one resumed run at each level.
    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(lambda _: resume("resume_test_tree_parent", parent), range(4)))
    assert sum(o.created for o in outcomes) == 1
    assert len({(o.dag_run_id, str(o.child_runs)) for o in outcomes}) == 1
    outcome = outcomes[0]
    [attached] = outcome.child_runs
    assert resumed_runs_of("resume_test_tree_parent", parent) == [outcome.dag_run_id]
    assert resumed_runs_of("resume_test_tree_child", child.dag_run_id) == [attached["dag_run_id"]]
    assert len(resumed_runs_of("resume_test_tree_grandchild", grandchild.dag_run_id)) == 1
    assert (attached["dag_id"], attached["task_id"]) == ("resume_test_tree_child", "trigger_child")
    # Asking again (a double click, a second scheduler) creates nothing more, at any level.
    again = resume("resume_test_tree_parent", parent)
    assert (again.created, again.dag_run_id, again.child_runs) == (
        False,
        outcome.dag_run_id,
        outcome.child_runs,
    )

    before = len(ledger())
    assert run_tree("resume_test_tree_parent", outcome.dag_run_id) == "success"
    # Only the failed task of the deepest run and what follows at each level ran again.
    assert ledger()[before:] == ["grandchild.g_last", "child.c_last", "parent.p_last"]

    from tests.helpers import xcom_value

    # The parent's trigger step names the resumed child run, as if it had triggered it.
    assert xcom_value("resume_test_tree_parent", outcome.dag_run_id, "p_last") == attached["dag_run_id"]
    child_record = run_record_of("resume_test_tree_child", attached["dag_run_id"])
    assert child_record.parent_tree_run.run_id == outcome.dag_run_id
    assert child_record.parent_run_id == child.dag_run_id
    [child_attach] = child_record.attach
    grandchild_record = run_record_of("resume_test_tree_grandchild", child_attach.run_id)
    assert grandchild_record.parent_tree_run.run_id == attached["dag_run_id"]
    assert grandchild_record.resumed_at_task_id == "g_last"
    # The resumed child's Resume page links back to the resumed parent run that waited for it.
    page = client.get(f"/ui/dags/resume_test_tree_child/dagRuns/{attached['dag_run_id']}").text
    assert 'id="parent-tree-run"' in page and outcome.dag_run_id in page


def test_a_child_that_cannot_be_resumed_refuses_the_parent_unless_children_are_rerun(
    monkeypatch, ledger, client
):
    from tests.helpers import log_folder

    monkeypatch.setenv("AIRFLOW_VAR_RESUME_TEST_TREE_FAIL", "child.c_middle")
    parent = started("resume_test_tree_parent")
    assert ledger() == ["parent.p_first", "child.c_first", "child.c_middle"]
    verdict = assess("resume_test_tree_parent", parent)
    assert verdict.resumable, verdict.reason
    child_run = verdict.plan.tasks[1].child.dag_run_id
    # The child's state is lost: the child cannot be resumed, so neither can the parent as it is.
    for state in (log_folder() / "dag_id=resume_test_tree_child" / f"run_id={child_run}").rglob(
        "*.resume.json"
    ):
        state.unlink()

    verdict = assess("resume_test_tree_parent", parent)
    assert (verdict.resumable, verdict.reason_code) == (False, "child_not_resumable")
    child = verdict.plan.tasks[1].child
    assert (child.dag_run_id, child.resumable, child.reason_code) == (child_run, False, "state_missing")
    assert child_run in verdict.reason and "no state file for task 'c_middle'" in verdict.reason
    url = f"{API}/dags/resume_test_tree_parent/dagRuns/{parent}"
    refused = client.post(f"{url}/resume")
    assert refused.status_code == 409
    assert refused.json()["reason_code"] == "child_not_resumable"
    assert resumed_runs_of("resume_test_tree_parent", parent) == []
    page = client.get(f"/ui/dags/resume_test_tree_parent/dagRuns/{parent}").text
    assert f'href="/ui/dags/resume_test_tree_child/dagRuns/{child_run}"' in page.replace("%3A", ":").replace(
        "%2B", "+"
    )
    assert 'id="rerun-children"' in page and "state_missing" in page

    # Who may read the parent's runs but not the child DAG's sees which child run blocks the resume
    # and its reason code, not its reason or plan (they name the child's tasks and state).
    def parent_only(dag_id, user):
        return dag_id == "resume_test_tree_parent"

    with monkeypatch.context() as patched:
        patched.setattr("airflow_resume_provider.api.security.can_read_runs", parent_only)
        shown = client.get(url).json()
        refused_shown = client.post(f"{url}/resume").json()
        bulk_shown = client.post(
            f"{API}/dags/resume_test_tree_parent/dagRuns/resume",
            json={"dag_run_ids": [parent], "dry_run": True},
        ).json()["results"][0]
        page_shown = client.get(f"/ui/dags/resume_test_tree_parent/dagRuns/{parent}").text
    hidden = "may not read runs of DAG 'resume_test_tree_child'"
    for child_shown in (shown["plan"]["tasks"][1]["child"], bulk_shown["children"][0]):
        assert (child_shown["dag_run_id"], child_shown["reason_code"], child_shown["plan"]) == (
            child_run,
            "state_missing",
            None,
        )
        assert hidden in child_shown["reason"]
    for text in (
        shown["reason"],
        refused_shown["detail"],
        bulk_shown["reason"],
        page_shown.replace("&#39;", "'"),
    ):
        assert hidden in text and "c_middle" not in text, text
    assert refused_shown["reason_code"] == "child_not_resumable"

    # Asked for: the step triggers a fresh full child run instead.
    previewed = client.get(url, params={"rerun_children": "true"}).json()
    assert previewed["resumable"], previewed["reason"]
    assert previewed["plan"]["tasks"][1]["child"]["action"] == "rerun"
    monkeypatch.setenv("AIRFLOW_VAR_RESUME_TEST_TREE_FAIL", "")
    created = client.post(f"{url}/resume", json={"rerun_children": True})
    assert created.status_code == 201, created.text
    outcome = resume("resume_test_tree_parent", parent, rerun_children=True)
    assert (outcome.dag_run_id, outcome.child_runs) == (created.json()["dag_run_id"], [])
    assert resumed_runs_of("resume_test_tree_child", child_run) == []
    before = len(ledger())
    assert run_tree("resume_test_tree_parent", outcome.dag_run_id) == "success"
    assert ledger()[before:] == [
        "child.c_first",
        "child.c_middle",
        "grandchild.g_first",
        "grandchild.g_last",
        "child.c_last",
        "parent.p_last",
    ]


def test_a_mapped_trigger_step_resumes_only_the_failed_indexes_children(monkeypatch, ledger):
    from tests.helpers import xcom_value

    monkeypatch.setenv("AIRFLOW_VAR_RESUME_TEST_TREE_FAIL_N", "1")
    parent = started("resume_test_tree_mapped")
    assert sorted(ledger()) == sorted(
        [
            "mapped.m_first",
            *(f"leaf.l_first[{n}]" for n in range(3)),
            *(f"leaf.l_check[{n}]" for n in range(3)),
        ]
    )
    verdict = assess("resume_test_tree_mapped", parent)
    assert verdict.resumable, verdict.reason
    indexes = verdict.plan.tasks[1].map_indexes
    assert [(m.map_index, m.action, m.child is not None) for m in indexes] == [
        (0, "restored", False),
        (1, "run", True),
        (2, "restored", False),
    ]
    assert [(s.task_id, s.action) for s in indexes[1].child.plan.tasks] == [
        ("l_first", "restored"),
        ("l_check", "run"),
    ]

    monkeypatch.setenv("AIRFLOW_VAR_RESUME_TEST_TREE_FAIL_N", "")
    outcome = resume("resume_test_tree_mapped", parent)
    [attached] = outcome.child_runs
    assert (attached["task_id"], attached["map_index"]) == ("trigger_leaves", 1)
    before = len(ledger())
    assert run_tree("resume_test_tree_mapped", outcome.dag_run_id) == "success"
    assert ledger()[before:] == ["leaf.l_check[1]", "mapped.m_last"]
    # The kept indexes keep their child runs; the resumed index names its resumed child run.
    seen = xcom_value("resume_test_tree_mapped", outcome.dag_run_id, "m_last")
    assert seen == [trigger_run_id(parent, 0), attached["dag_run_id"], trigger_run_id(parent, 2)]
    assert seen[0] != seen[2]


def trigger_run_id(run_id: str, map_index: int) -> str:
    from airflow.models.xcom import XComModel

    with _session() as session:
        return session.scalar(
            XComModel.get_many(
                run_id=run_id,
                key="trigger_run_id",
                task_ids="trigger_leaves",
                dag_ids="resume_test_tree_mapped",
                map_indexes=map_index,
            ).with_only_columns(XComModel.value)
        )

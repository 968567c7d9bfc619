"""What the verdict's plan says a resume carries from the task state store (pure: from the facts)."""

from __future__ import annotations

import json

from airflow_resume_provider.resumability import decide
from airflow_resume_provider.ui.page import carried
from tests.unit.builders import facts

JOB = {"key": "remote_job_id", "value": "spark-2026-0042", "map_index": -1}


def test_only_the_tasks_that_run_again_carry_their_entries():
    # The facts hold every task's entries; the plan gives them to the tasks that run again only.
    everything = {task: [{**JOB, "value": task}] for task in ("extract", "transform", "load")}
    at_transform = decide(facts(carried=everything))
    assert [len(step.carries) for step in at_transform.plan.tasks] == [0, 1, 1]
    at_extract = decide(facts(carried=everything, resume_task_id="extract"))
    assert [len(step.carries) for step in at_extract.plan.tasks] == [1, 1, 1]


def test_the_plan_shows_what_each_task_reattaches_to():
    verdict = decide(facts(carried={"transform": [JOB], "load": [{**JOB, "key": "load_id", "value": "7"}]}))
    assert verdict.resumable
    steps = {step["task_id"]: step for step in verdict.to_dict()["plan"]["tasks"]}
    assert steps["extract"]["carries"] == []  # restored: never run, nothing to reattach to
    assert steps["transform"]["carries"] == [JOB]
    assert steps["load"]["carries"] == [{"key": "load_id", "value": "7", "map_index": -1}]


def test_nothing_carried_leaves_an_empty_list_in_every_step():
    verdict = decide(facts())
    assert [step.carries for step in verdict.plan.tasks] == [[], [], []]


def test_carried_entries_are_shown_as_key_equals_value():
    verdict = decide(facts(carried={"transform": [JOB, {**JOB, "map_index": 2}]}))
    step = verdict.plan.tasks[1]
    assert [carried(entry) for entry in step.carries] == [
        "remote_job_id=spark-2026-0042",
        "remote_job_id[2]=spark-2026-0042",
    ]


def test_carried_values_are_decoded_masked_and_bounded():
    from airflow_resume_provider.carry import PREVIEW_CHARS, _shown

    assert _shown("remote_job_id", json.dumps("spark-0042")) == "spark-0042"
    assert _shown("remote_job_id", json.dumps({"cluster": "c1", "id": 7})) == '{"cluster": "c1", "id": 7}'
    assert _shown("api_password", json.dumps("s3cr3t")) == "***"
    assert _shown("job", json.dumps({"token": "abc", "id": 7})) == '{"token": "***", "id": 7}'
    long = _shown("job", json.dumps("x" * 1000))
    assert long == "x" * PREVIEW_CHARS + "… (1000 characters)"

"""
The resume verdict and the plan.

``decide`` is pure: every test builds :class:`RunFacts` from real state records and settings, and checks
the reason code and the words a user reads in the API, the CLI and the UI. (The state chain behind
them: ``test_chain.py``; the resumed run's id: ``test_run_record.py``.)
"""

from __future__ import annotations

import json

import pytest
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

from airflow_resume_provider.exceptions import (
    NonLinearDagError,
    ResumeConfigError,
)
from airflow_resume_provider.models import PlanStep, ReasonCode
from airflow_resume_provider.resumability import build_plan, decide
from airflow_resume_provider.resume_param import ResumeSettings, parse_settings
from airflow_resume_provider.state.chain import StateChain
from airflow_resume_provider.structure import TaskShape, linear_order
from tests.unit.builders import (
    BASH,
    DAG_ID,
    ORDER,
    PY,
    RUN_ID,
    WHERE,
    facts,
    load_chain_in_memory,
    record,
    ref,
    refused,
    rel,
    shapes,
    transform_chain,
    url,
)

# --- resumable ----------------------------------------------------------------------------------------


def test_resumable_run_has_no_reason_and_shows_failure_and_plan():
    verdict = decide(facts(lineage={"root_run_id": RUN_ID}, resumed_run_id=None))

    assert verdict.resumable is True
    assert verdict.reason_code is None
    assert verdict.reason is None
    assert verdict.failed_task_id == "transform"
    assert verdict.resume_task_id == "transform"
    assert verdict.failure["exception_type"] == "ConnectionError"
    assert verdict.failure["message"] == "warehouse unreachable: timed out after 30s"
    assert [(s.task_id, s.action, s.resume_point) for s in verdict.plan.tasks] == [
        ("extract", "restored", False),
        ("transform", "run", True),
        ("load", "run", False),
    ]
    assert verdict.lineage == {"root_run_id": RUN_ID}
    assert verdict.warnings == []
    # The API returns the verdict as JSON; state files are named relative to the state folder.
    body = json.loads(json.dumps(verdict.to_dict()))
    assert body["plan"]["resume_task_id"] == "transform"
    assert body["plan"]["tasks"][0]["source"] == rel("transform")
    assert "/opt/airflow" not in json.dumps(body)


def test_changed_task_code_with_same_ids_order_and_types_is_resumable():
    # The current order is built anew (as from a re-parsed DAG file whose callables changed).
    verdict = decide(
        facts(current_order=[TaskShape("extract", PY), TaskShape("transform", PY), TaskShape("load", BASH)])
    )
    assert verdict.resumable is True


def test_verdict_names_an_existing_resumed_run():
    verdict = decide(facts(resumed_run_id=f"resume__{RUN_ID}__1__0123456789"))
    assert verdict.resumed_run_id == f"resume__{RUN_ID}__1__0123456789"


IGNORED = (
    "The run's conf has a '__resume__' entry that this provider did not write for this run; it was "
    "ignored and the run is treated as a normal run."
)


def test_warnings_reach_the_user_whatever_the_verdict():
    resumable = decide(facts(warnings=[IGNORED]))
    assert resumable.resumable is True
    assert resumable.warnings == [IGNORED]
    assert resumable.to_dict()["warnings"] == [IGNORED]

    refused_verdict = decide(facts(run_state="success", warnings=[IGNORED]))
    assert refused_verdict.reason_code == ReasonCode.RUN_NOT_FAILED
    assert refused_verdict.warnings == [IGNORED]


# --- each reason --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings",
    [None, parse_settings(False, dag_id=DAG_ID), parse_settings({"enabled": False}, dag_id=DAG_ID)],
    ids=["no-param", "param-false", "enabled-false"],
)
def test_resume_disabled(settings):
    reason = refused(decide(facts(settings=settings)), ReasonCode.RESUME_DISABLED)
    assert reason.startswith(f"{WHERE}: resume is not enabled for this DAG.")
    assert "params={'resume': True}" in reason


def test_invalid_resume_config_reports_the_param_error():
    with pytest.raises(ResumeConfigError) as err:
        parse_settings({"retries": -1, "retry_dealy": 5}, dag_id=DAG_ID)
    verdict = decide(facts(settings=None, settings_error=str(err.value)))

    reason = refused(verdict, ReasonCode.INVALID_CONFIG)
    assert reason == str(err.value)
    assert f"DAG {DAG_ID!r}" in reason
    assert "'retries'" in reason
    assert "'retry_dealy': unknown key" in reason


@pytest.mark.parametrize("state", ["success", "running", "queued"])
def test_run_not_failed(state):
    reason = refused(decide(facts(run_state=state)), ReasonCode.RUN_NOT_FAILED)
    assert reason == f"{WHERE}: the run is {state}; only failed runs can be resumed."


def test_no_failed_task():
    reason = refused(
        decide(facts(failed_task_id=None, resume_task_id=None, chain=None)), ReasonCode.NO_FAILED_TASK
    )
    assert reason.startswith(f"{WHERE}: no task of the run failed")
    assert "timeout" in reason
    assert "no failed task to resume at" in reason


def test_invalid_resume_point_is_passed_through():
    message = (
        f"{WHERE}: cannot resume at 'load', which is upstream_failed; choose the failed task "
        "'transform' or a task before it that succeeded."
    )
    verdict = decide(facts(resume_task_id="load", resume_point_error=message, chain=None))
    assert refused(verdict, ReasonCode.INVALID_RESUME_POINT) == message
    assert verdict.failure is None


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (
            ReasonCode.STATE_MISSING,
            f"{WHERE}: no state file for task 'transform' (try 1) at {rel('transform')}; the task ran before "
            "resume was enabled, or the file was deleted.",
        ),
        (
            ReasonCode.STATE_INVALID,
            f"{WHERE}: State file {rel('transform')} failed its integrity check: its content was changed after "
            "it was written (corruption or tampering), or it was signed with another key.",
        ),
        (
            ReasonCode.STATE_NOT_RECORDED,
            f"{WHERE}: the state of task 'transform' was not recorded: XCom value of 'extract' is not "
            "JSON-serializable",
        ),
        (
            ReasonCode.STATE_INVALID,
            f"{WHERE}: The state of task 'transform' (run {RUN_ID!r}) has a state link 'file:///etc/passwd', "
            "which lies outside the state folder: refused, not read.",
        ),
        (
            ReasonCode.STATE_UNREACHABLE,
            f"{WHERE}: the state folder cannot be reached: Could not read state file {rel('transform')}: "
            "timed out. Try again when it is back.",
        ),
    ],
)
def test_state_errors_are_passed_through(code, message):
    verdict = decide(facts(chain=None, state_error_code=code, state_error=message))
    assert refused(verdict, code) == message
    assert verdict.failure is None


def test_an_expired_run_is_refused_with_the_date_and_its_plan_names_no_state_file():
    message = (
        f"{WHERE}: its state expired on 2024-02-01 03:04 UTC, 30 days after the run ended ([resume] "
        "retention_days = 30); its state files may have been deleted, so it is not resumed. Trigger a new "
        "run instead."
    )
    # No state was read for an expired run: there is no chain.
    verdict = decide(facts(chain=None, state_expired=message))
    assert refused(verdict, ReasonCode.STATE_EXPIRED) == message
    assert [(s.task_id, s.action, s.source) for s in verdict.plan.tasks] == [
        ("extract", "restored", None),
        ("transform", "run", None),
        ("load", "run", None),
    ]


def test_manual_kill():
    message = (
        f"{WHERE}: task 'transform' was set to failed by admin (patch_task_instance at 2024-01-02 03:06:00); "
        "a run stopped on purpose is never resumed. Trigger a new run instead."
    )
    assert refused(decide(facts(manual_kill=message)), ReasonCode.MANUAL_KILL) == message


def test_structure_changed_when_the_dag_is_no_longer_linear():
    with DAG(DAG_ID, schedule=None) as dag:
        extract, transform, load = (EmptyOperator(task_id=t) for t, _ in ORDER)
        extract >> [transform, load]
    with pytest.raises(NonLinearDagError) as err:
        linear_order(dag)

    reason = refused(
        decide(facts(current_order=None, current_order_error=str(err.value))), ReasonCode.STRUCTURE_CHANGED
    )
    assert reason == str(err.value)
    assert "branching (more than one downstream task) at 'extract'" in reason


@pytest.mark.parametrize(
    ("current", "expected"),
    [
        (
            [("transform", PY), ("extract", PY), ("load", BASH)],
            ["tasks were reordered: was extract >> transform >> load, now transform >> extract >> load"],
        ),
        (
            [("extract", PY), ("transform", PY), ("validate", PY), ("load", BASH)],
            ["task 'validate' was added"],
        ),
        ([("extract", PY), ("transform", PY)], ["task 'load' was removed"]),
        (
            [("extract", PY), ("transform", BASH), ("load", BASH)],
            ["task 'transform' changed operator type from PythonOperator to BashOperator"],
        ),
        (
            [("extract", PY), ("clean", PY), ("load", BASH)],
            ["task 'transform' was removed", "task 'clean' was added"],
        ),
    ],
    ids=["reordered", "added", "removed", "operator-type", "renamed"],
)
def test_structure_changed_since_the_run(current, expected):
    reason = refused(decide(facts(current_order=shapes(current))), ReasonCode.STRUCTURE_CHANGED)
    assert reason == (
        f"{WHERE}: the DAG's structure changed since the run: {'; '.join(expected)}. A run can only be "
        "resumed on the same tasks in the same order (changing a task's code or arguments is fine). "
        "Trigger a new run instead."
    )


PARAMS_PROBLEM = (
    f"{WHERE}: the DAG's params no longer accept the original run's values: Invalid input for param mode: "
    "'full' is not one of ['incremental']. A resume replays the original inputs: make the params accept them "
    "again, or trigger a new run."
)


def test_params_that_refuse_the_original_values():
    verdict = decide(facts(params_error=PARAMS_PROBLEM))
    assert refused(verdict, ReasonCode.PARAMS_INVALID) == PARAMS_PROBLEM
    assert verdict.failure["exception_type"] == "ConnectionError"
    assert [s.task_id for s in verdict.plan.tasks] == ["extract", "transform", "load"]


def test_a_structure_change_is_reported_before_params():
    changed = facts(params_error=PARAMS_PROBLEM, current_order=shapes([("extract", PY), ("transform", PY)]))
    assert decide(changed).reason_code == ReasonCode.STRUCTURE_CHANGED


def test_refused_verdict_still_reports_the_recorded_failure():
    verdict = decide(facts(current_order=shapes([("extract", PY), ("transform", PY)])))
    assert verdict.reason_code == ReasonCode.STRUCTURE_CHANGED
    assert verdict.failed_task_id == "transform"
    assert verdict.failure["exception_type"] == "ConnectionError"


# --- order of the checks ------------------------------------------------------------------------------


def test_checks_are_reported_in_a_fixed_order():
    """With every problem present, fixing them one by one reveals the next in the documented order."""
    problems = facts(
        settings=None,
        settings_error=f"DAG {DAG_ID!r}: invalid params['resume']: key 'retries': bad.",
        run_state="success",
        failed_task_id=None,
        resume_point_error=f"{WHERE}: 'nope' is not a task of this run.",
        state_error_code=ReasonCode.STATE_MISSING,
        state_error=f"{WHERE}: no state file for task 'transform'.",
        state_expired=f"{WHERE}: its state expired on 2024-02-01 03:04 UTC.",
        manual_kill=f"{WHERE}: the run was set to failed by admin.",
        current_order_error=f"DAG {DAG_ID!r} has resume enabled but is not linear.",
        params_error=PARAMS_PROBLEM,
    )
    fixes = [
        ("settings_error", None, ReasonCode.INVALID_CONFIG),
        ("settings", ResumeSettings(), ReasonCode.RESUME_DISABLED),
        ("run_state", "failed", ReasonCode.RUN_NOT_FAILED),
        ("failed_task_id", "transform", ReasonCode.NO_FAILED_TASK),
        ("resume_point_error", None, ReasonCode.INVALID_RESUME_POINT),
        ("state_error_code", None, ReasonCode.STATE_MISSING),
        ("state_expired", None, ReasonCode.STATE_EXPIRED),
        ("manual_kill", None, ReasonCode.MANUAL_KILL),
        ("current_order_error", None, ReasonCode.STRUCTURE_CHANGED),
        ("params_error", None, ReasonCode.PARAMS_INVALID),
    ]
    for field_name, fixed, expected in fixes:
        assert decide(problems).reason_code == expected, f"before fixing {field_name}"
        setattr(problems, field_name, fixed)
    assert decide(problems).resumable is True


def test_disabled_wins_over_run_not_failed():
    assert decide(facts(settings=None, run_state="success")).reason_code == ReasonCode.RESUME_DISABLED


def test_manual_kill_is_reported_before_a_structure_change():
    killed = f"{WHERE}: the run was set to failed by admin (patch_dag_run at 2024-01-02 03:06:00)."
    changed = facts(manual_kill=killed, current_order=shapes([("extract", PY), ("transform", PY)]))
    assert decide(changed).reason == killed
    assert (
        decide(facts(manual_kill=killed, current_order_error="not linear")).reason_code
        == ReasonCode.MANUAL_KILL
    )


# --- the plan -----------------------------------------------------------------------------------------


def test_plan_restores_tasks_before_the_resume_point_from_the_record_holding_their_xcoms():
    assert build_plan(facts()) == [
        PlanStep(
            task_id="extract",
            task_type=PY,
            action="restored",
            source=rel("transform"),
            xcom_keys=["return_value", "row_count"],
        ),
        PlanStep(task_id="transform", task_type=PY, action="run", resume_point=True),
        PlanStep(task_id="load", task_type=BASH, action="run"),
    ]


def test_plan_over_a_three_link_chain():
    plan = build_plan(facts(failed_task_id="load", resume_task_id="load", chain=load_chain_in_memory()))
    assert plan == [
        PlanStep(
            task_id="extract",
            task_type=PY,
            action="restored",
            source=rel("transform"),
            xcom_keys=["return_value", "row_count"],
        ),
        PlanStep(
            task_id="transform",
            task_type=PY,
            action="restored",
            source=rel("load"),
            xcom_keys=["audit", "rejected", "return_value"],
        ),
        PlanStep(task_id="load", task_type=BASH, action="run", resume_point=True),
    ]


def test_plan_resuming_at_the_root_task_restores_nothing():
    root = record("extract", failed=True)
    chain = StateChain(head=root, head_ref=ref("extract"), records=[(root, ref("extract"))])
    plan = build_plan(facts(failed_task_id="extract", resume_task_id="extract", chain=chain))
    assert [(s.task_id, s.action, s.resume_point) for s in plan] == [
        ("extract", "run", True),
        ("transform", "run", False),
        ("load", "run", False),
    ]


def test_plan_follows_the_recorded_structure_when_there_is_a_chain():
    plan = build_plan(facts(current_order=shapes([("extract", PY), ("transform", BASH)])))
    assert [(s.task_id, s.task_type) for s in plan] == [("extract", PY), ("transform", PY), ("load", BASH)]


def test_plan_without_state_uses_the_current_order_and_names_no_source():
    plan = build_plan(facts(chain=None, state_error_code=ReasonCode.STATE_MISSING, state_error="missing"))
    assert plan == [
        PlanStep(task_id="extract", task_type=PY, action="restored"),
        PlanStep(task_id="transform", task_type=PY, action="run", resume_point=True),
        PlanStep(task_id="load", task_type=BASH, action="run"),
    ]


def test_plan_is_empty_without_state_or_order():
    assert build_plan(facts(chain=None, current_order=None, current_order_error="not linear")) == []


@pytest.mark.parametrize("chain", [transform_chain(), None], ids=["with-state", "without-state"])
def test_plan_is_empty_when_the_resume_point_is_not_one_of_the_tasks(chain):
    # e.g. ?from_task_id=nope: nothing would be restored, so no plan is shown.
    run_facts = facts(
        resume_task_id="nope", chain=chain, resume_point_error=f"{WHERE}: 'nope' is not a task."
    )
    assert build_plan(run_facts) == []
    assert decide(run_facts).plan.tasks == []


def test_plan_without_known_folders_shows_the_link_as_recorded():
    assert build_plan(facts(roots=[]))[0].source == url("transform")


# --- the state chain ----------------------------------------------------------------------------------


def test_a_run_without_a_resume_point_shows_no_plan():
    # A successful run, or a failed one without a failed task: nothing would be restored or run.
    for run_facts in (
        facts(run_state="success", failed_task_id=None, resume_task_id=None, chain=None),
        facts(failed_task_id=None, resume_task_id=None, chain=None),
    ):
        assert decide(run_facts).plan.tasks == []


# --- mapped steps ---------------------------------------------------------------------------------------


def test_a_mapped_resume_point_plans_its_indexes_by_their_state():
    plan = build_plan(
        facts(
            current_order=[
                TaskShape("extract", PY),
                TaskShape("transform", PY, True),
                TaskShape("load", BASH),
            ],
            point_map_states=[(0, "success"), (1, "failed"), (2, "skipped"), (3, "upstream_failed")],
        )
    )
    point = plan[1]
    assert [(m.map_index, m.action, m.state) for m in point.map_indexes] == [
        (0, "restored", "success"),
        (1, "run", "failed"),
        (2, "restored", "skipped"),
        (3, "run", "upstream_failed"),
    ]


def test_a_mapped_step_that_would_map_over_another_number_of_values_is_a_structure_change():
    change = "task 'transform' now maps over 4 values; the run mapped it over 5"
    reason = refused(decide(facts(map_count_changes=[change])), ReasonCode.STRUCTURE_CHANGED)
    assert change in reason

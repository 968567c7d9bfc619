"""
The resume verdict, the plan, and the state chain behind them.

``decide`` is pure: every test builds :class:`RunFacts` from real state records and settings, and checks
the reason code and the words a user reads in the API, the CLI and the UI. The chain tests write real
state files in Airflow's default log layout and follow them as the provider does: every link checked
against the run's :class:`ChainScope` before it is read. (The resumed run's id: ``test_marker.py``.)
"""

from __future__ import annotations

import json

import pytest
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

from airflow_resume_provider.exceptions import (
    NonLinearDagError,
    ResumeConfigError,
    StateError,
    StateMissingError,
)
from airflow_resume_provider.models import PlanStep, ReasonCode
from airflow_resume_provider.resumability import RunFacts, build_plan, decide
from airflow_resume_provider.settings import ResumeSettings, parse_settings
from airflow_resume_provider.state import storage
from airflow_resume_provider.state.chain import ChainScope, StateChain, load_chain
from airflow_resume_provider.state.model import (
    FailureRecord,
    Inputs,
    StateRecord,
    StateRef,
    StructureSnapshot,
    TaskIdentity,
    XComEntry,
)
from airflow_resume_provider.state.paths import StateLocation, StateRoot
from airflow_resume_provider.state.storage import encode
from airflow_resume_provider.structure import TaskShape, linear_order, structure_hash

DAG_ID = "etl"
RUN_ID = "manual__2024-01-02T03:04:05+00:00"
WHERE = f"DAG {DAG_ID!r}, run {RUN_ID!r}"
PY = "PythonOperator"
BASH = "BashOperator"
ORDER = [("extract", PY), ("transform", PY), ("load", BASH)]
LOGS = StateRoot("file:///opt/airflow/logs")
KEY = b"state-signing-key"
#: Airflow's default ``[logging] log_filename_template``.
TEMPLATE = (
    "dag_id={{ ti.dag_id }}/run_id={{ ti.run_id }}/task_id={{ ti.task_id }}/"
    "{% if ti.map_index >= 0 %}map_index={{ ti.map_index }}/{% endif %}"
    "attempt={{ try_number|default(ti.try_number) }}.log"
)


def shapes(order: list[tuple[str, str]]) -> list[TaskShape]:
    return [TaskShape(t, k) for t, k in order]


def rel(task_id: str, run_id: str = RUN_ID, attempt: int = 1) -> str:
    """A state file's path in the state folder, as users are shown it."""
    return f"dag_id={DAG_ID}/run_id={run_id}/task_id={task_id}/attempt={attempt}.resume.json"


def url(task_id: str) -> str:
    return f"{LOGS.url}/{rel(task_id)}"


def ref(task_id: str, digest_char: str = "a") -> StateRef:
    return StateRef(path=url(task_id), digest=digest_char * 64)


def failure() -> FailureRecord:
    return FailureRecord(
        exception_type="ConnectionError",
        message="warehouse unreachable: timed out after 30s",
        try_number=1,
        recorded_at="2024-01-02T03:10:00+00:00",
    )


def record(
    task_id: str,
    *,
    upstream: str | None = None,
    xcoms: list[XComEntry] | None = None,
    previous: StateRef | None = None,
    failed: bool = False,
    order: list[tuple[str, str]] = ORDER,
    run_id: str = RUN_ID,
    try_number: int = 1,
    dag_id: str = DAG_ID,
) -> StateRecord:
    return StateRecord(
        written_at="2024-01-02T03:05:00+00:00",
        identity=TaskIdentity(dag_id=dag_id, run_id=run_id, task_id=task_id, try_number=try_number),
        structure=StructureSnapshot(tasks=order, hash=structure_hash(shapes(order))),
        inputs=Inputs(upstream_task_id=upstream, xcoms=xcoms or [], conf={"day": "2024-01-01"}),
        previous=previous,
        failure=failure() if failed else None,
    )


EXTRACT_XCOMS = [
    XComEntry(task_id="extract", key="return_value", value=[{"id": 1, "name": "Zoë"}]),
    XComEntry(task_id="extract", key="row_count", value=1),
]
TRANSFORM_XCOMS = [
    XComEntry(task_id="transform", key="return_value", value={"rows": [{"id": 1}]}),
    XComEntry(task_id="transform", key="rejected", value=[]),
    XComEntry(task_id="transform", key="audit", value="ok"),
]


def transform_chain(order: list[tuple[str, str]] = ORDER) -> StateChain:
    """transform failed; its record holds extract's XComs; extract's own record is linked."""
    extract = record("extract", order=order)
    transform = record("transform", upstream="extract", xcoms=EXTRACT_XCOMS, failed=True, order=order)
    return StateChain(
        head=transform,
        head_ref=ref("transform"),
        records=[(transform, ref("transform")), (extract, ref("extract"))],
    )


def load_chain_in_memory() -> StateChain:
    """load failed; the chain reaches back through transform to extract."""
    extract = record("extract")
    transform = record("transform", upstream="extract", xcoms=EXTRACT_XCOMS, previous=ref("extract", "e"))
    load = record(
        "load", upstream="transform", xcoms=TRANSFORM_XCOMS, previous=ref("transform", "t"), failed=True
    )
    return StateChain(
        head=load,
        head_ref=ref("load", "l"),
        records=[
            (load, ref("load", "l")),
            (transform, ref("transform", "t")),
            (extract, ref("extract", "e")),
        ],
    )


def facts(**overrides) -> RunFacts:
    """The facts of a failed run that can be resumed at 'transform'; overrides add one problem each."""
    values = dict(
        dag_id=DAG_ID,
        run_id=RUN_ID,
        run_state="failed",
        settings=parse_settings(True, dag_id=DAG_ID),
        failed_task_id="transform",
        resume_task_id="transform",
        chain=transform_chain(),
        current_order=shapes(ORDER),
        roots=[LOGS],
    )
    values.update(overrides)
    return RunFacts(**values)


def refused(verdict, code: str) -> str:
    assert verdict.resumable is False
    assert verdict.reason_code == code
    assert verdict.dag_id == DAG_ID
    assert verdict.dag_run_id == RUN_ID
    return verdict.reason


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


def test_restored_tasks_gives_each_earlier_task_its_xcoms_and_own_state_file():
    restored = load_chain_in_memory().restored_tasks()

    assert set(restored) == {"extract", "transform"}
    assert restored["transform"].xcoms == TRANSFORM_XCOMS
    assert restored["transform"].state_ref == ref("transform", "t")
    assert restored["transform"].extra_keys == ["audit", "rejected"]
    assert restored["extract"].xcoms == EXTRACT_XCOMS
    assert restored["extract"].state_ref == ref("extract", "e")
    assert restored["extract"].extra_keys == ["row_count"]


def test_restored_task_with_only_a_return_value_has_no_extra_keys():
    only_return = [XComEntry(task_id="extract", key="return_value", value=42)]
    head = record("transform", upstream="extract", xcoms=only_return, previous=ref("extract"))
    restored = StateChain(
        head=head, head_ref=ref("transform"), records=[(head, ref("transform"))]
    ).restored_tasks()
    assert restored["extract"].xcoms == only_return
    assert restored["extract"].extra_keys == []


RESUMED_RUN = f"resume__{RUN_ID}__1__0123456789"


def scope(tmp_path, run_ids: tuple[str, ...] = (RUN_ID,)) -> ChainScope:
    """The scope gather_facts builds: the state folder, Airflow's default log template, the run's lineage."""
    return ChainScope(
        dag_id=DAG_ID, run_ids=list(run_ids), roots=[StateRoot(f"file://{tmp_path}")], templates=[TEMPLATE]
    )


def write(folder, rec: StateRecord, *, at: str | None = None, key: bytes = KEY) -> StateRef:
    """Write ``rec`` where the provider keeps it (or at ``at``, relative to ``folder``); its reference."""
    identity = rec.identity
    path = folder / (at or rel(identity.task_id, identity.run_id, identity.try_number))
    path.parent.mkdir(parents=True, exist_ok=True)
    data, digest = encode(rec, key)
    path.write_bytes(data)
    return StateRef(path=f"file://{path}", digest=digest)


def write_chain(tmp_path) -> dict[str, StateRef]:
    refs = {"extract": write(tmp_path, record("extract"))}
    refs["transform"] = write(
        tmp_path, record("transform", upstream="extract", xcoms=EXTRACT_XCOMS, previous=refs["extract"])
    )
    refs["load"] = write(
        tmp_path,
        record("load", upstream="transform", xcoms=TRANSFORM_XCOMS, previous=refs["transform"], failed=True),
    )
    return refs


@pytest.fixture
def reads(monkeypatch) -> list[str]:
    """The URLs of every state file read (or attempted)."""
    seen: list[str] = []
    real = storage.read_bytes

    def spy(location, **kwargs):
        seen.append(location.url)
        return real(location, **kwargs)

    monkeypatch.setattr(storage, "read_bytes", spy)
    return seen


def test_load_chain_follows_three_linked_files(tmp_path):
    refs = write_chain(tmp_path)

    chain = load_chain(StateLocation(url=refs["load"].path), scope(tmp_path), key=KEY)

    assert chain.head.identity.task_id == "load"
    assert chain.head.failure == failure()
    assert chain.head_ref == refs["load"]
    assert [(r.identity.task_id, ref_) for r, ref_ in chain.records] == [
        ("load", refs["load"]),
        ("transform", refs["transform"]),
        ("extract", refs["extract"]),
    ]
    restored = chain.restored_tasks()
    assert restored["transform"].xcoms == TRANSFORM_XCOMS
    assert restored["transform"].state_ref == refs["transform"]
    assert restored["extract"].xcoms == EXTRACT_XCOMS
    assert restored["extract"].state_ref == refs["extract"]
    # The plan names the files relative to the state folder.
    plan = build_plan(
        facts(failed_task_id="load", resume_task_id="load", chain=chain, roots=scope(tmp_path).roots)
    )
    assert [s.source for s in plan] == [rel("transform"), rel("load"), None]


def test_load_chain_follows_links_into_the_runs_a_resumed_run_came_from(tmp_path):
    # A resumed run's task links to the state of the restored task in the run where it really ran.
    refs = write_chain(tmp_path)
    head = write(
        tmp_path,
        record(
            "load",
            upstream="transform",
            xcoms=TRANSFORM_XCOMS,
            previous=refs["transform"],
            failed=True,
            run_id=RESUMED_RUN,
        ),
    )

    chain = load_chain(StateLocation(url=head.path), scope(tmp_path, (RESUMED_RUN, RUN_ID)), key=KEY)
    assert [(r.identity.task_id, r.identity.run_id) for r, _ in chain.records] == [
        ("load", RESUMED_RUN),
        ("transform", RUN_ID),
        ("extract", RUN_ID),
    ]

    with pytest.raises(StateError) as err:
        load_chain(StateLocation(url=head.path), scope(tmp_path, (RESUMED_RUN,)), key=KEY)
    assert str(err.value) == (
        f"The state of task 'load' (run {RESUMED_RUN!r}) has a state link {refs['transform'].path!r}, which is "
        f"not where the state of task 'transform' of run {RESUMED_RUN!r} is kept: refused, not read."
    )


def test_load_chain_rejects_a_tampered_middle_file(tmp_path):
    refs = write_chain(tmp_path)
    middle = tmp_path / rel("transform")
    document = json.loads(middle.read_bytes())
    document["inputs"]["xcoms"][0]["value"] = [{"id": 1, "name": "Mallory"}]
    middle.write_text(json.dumps(document))

    with pytest.raises(StateError, match="integrity") as err:
        load_chain(StateLocation(url=refs["load"].path), scope(tmp_path), key=KEY)
    assert f"State file {rel('transform')} " in str(err.value)
    assert str(tmp_path) not in str(err.value)
    assert not isinstance(err.value, StateMissingError)


def test_load_chain_rejects_a_file_rewritten_after_it_was_referenced(tmp_path):
    refs = write_chain(tmp_path)
    # A valid, correctly digested file, but not the one the downstream record pinned.
    other = [XComEntry(task_id="extract", key="return_value", value=[{"id": 2}])]
    write(tmp_path, record("transform", upstream="extract", xcoms=other, previous=refs["extract"]))

    with pytest.raises(StateError, match="changed after it was referenced") as err:
        load_chain(StateLocation(url=refs["load"].path), scope(tmp_path), key=KEY)
    assert str(err.value).startswith(f"State file {rel('transform')} of task 'transform' changed")
    assert str(tmp_path) not in str(err.value)


def test_a_failure_added_after_the_next_task_linked_to_the_file_keeps_the_link_valid(tmp_path):
    # transform fails after load (trigger rule all_done) linked to its state: the link still holds.
    refs = write_chain(tmp_path)
    failed = record(
        "transform", upstream="extract", xcoms=EXTRACT_XCOMS, previous=refs["extract"], failed=True
    )
    write(tmp_path, failed)

    chain = load_chain(StateLocation(url=refs["load"].path), scope(tmp_path), key=KEY)

    assert [r.identity.task_id for r, _ in chain.records] == ["load", "transform", "extract"]
    assert chain.records[1][0].failure == failure()


def test_a_failure_record_edited_without_the_key_is_refused(tmp_path):
    refs = write_chain(tmp_path)
    head = tmp_path / rel("load")
    document = json.loads(head.read_bytes())
    document["failure"]["message"] = "nothing to see here"
    head.write_text(json.dumps(document))

    with pytest.raises(StateError, match="integrity"):
        load_chain(StateLocation(url=refs["load"].path), scope(tmp_path), key=KEY)


def test_load_chain_without_the_head_file_is_missing_state(tmp_path):
    location = StateLocation(url=f"file://{tmp_path}/{rel('load')}")
    with pytest.raises(StateMissingError) as err:
        load_chain(location, scope(tmp_path), key=KEY)
    assert str(err.value) == f"State file {rel('load')} does not exist."


def test_load_chain_with_a_missing_middle_file_is_invalid_not_missing_state(tmp_path):
    refs = write_chain(tmp_path)
    (tmp_path / rel("transform")).unlink()

    with pytest.raises(StateError) as err:
        load_chain(StateLocation(url=refs["load"].path), scope(tmp_path), key=KEY)
    assert not isinstance(err.value, StateMissingError)
    assert str(err.value) == (
        f"State file {rel('transform')} of task 'transform', needed to restore its results, does not exist."
    )


def test_load_chain_when_the_upstream_state_was_not_recorded(tmp_path):
    head = write(tmp_path, record("load", upstream="transform", xcoms=TRANSFORM_XCOMS, previous=None))

    with pytest.raises(StateError, match="resume_capture_error") as err:
        load_chain(StateLocation(url=head.path), scope(tmp_path), key=KEY)
    assert "'load'" in str(err.value)
    assert "'transform'" in str(err.value)


def test_load_chain_refuses_a_link_to_another_tasks_file_without_reading_it(tmp_path, reads):
    extract = write(tmp_path, record("extract"))
    head = write(tmp_path, record("load", upstream="transform", xcoms=TRANSFORM_XCOMS, previous=extract))

    with pytest.raises(StateError) as err:
        load_chain(StateLocation(url=head.path), scope(tmp_path), key=KEY)
    assert str(err.value) == (
        f"The state of task 'load' (run {RUN_ID!r}) has a state link {extract.path!r}, which is not where the "
        f"state of task 'transform' of run {RUN_ID!r} is kept: refused, not read."
    )
    assert reads == [head.path]


@pytest.mark.parametrize(
    ("stored", "at", "shown"),
    [
        (record("extract"), rel("transform"), f"({DAG_ID!r}, {RUN_ID!r}, 'extract', try 1)"),
        (
            record("transform", run_id="manual__other"),
            rel("transform"),
            f"({DAG_ID!r}, 'manual__other', 'transform', try 1)",
        ),
        (
            record("transform", try_number=1),
            rel("transform", attempt=2),
            f"({DAG_ID!r}, {RUN_ID!r}, 'transform', try 1)",
        ),
        (
            record("transform", dag_id="other_dag"),
            rel("transform"),
            f"('other_dag', {RUN_ID!r}, 'transform', try 1)",
        ),
    ],
    ids=["other-task", "other-run", "other-try", "other-dag"],
)
def test_load_chain_rejects_a_file_holding_another_task_attempt(tmp_path, stored, at, shown):
    # The link is where transform's state belongs, but the file there is someone else's.
    misplaced = write(tmp_path, stored, at=at)
    head = write(tmp_path, record("load", upstream="transform", xcoms=TRANSFORM_XCOMS, previous=misplaced))

    with pytest.raises(StateError) as err:
        load_chain(StateLocation(url=head.path), scope(tmp_path), key=KEY)
    assert str(err.value) == (
        f"State file {at} holds the state of another task attempt {shown}, not of task 'transform'; "
        "the state chain is corrupt."
    )


@pytest.mark.parametrize(
    "link",
    [
        "file://{elsewhere}/" + rel("transform"),
        "file://{tmp_path}/../{elsewhere_name}/" + rel("transform"),
        "file://{tmp_path}/" + rel("transform", run_id="manual__not_in_lineage"),
        "file:///etc/passwd",
        "/proc/self/environ",
        "http://127.0.0.1:1/x",
        "s3://other-bucket/" + rel("transform"),
        "file://{tmp_path}/" + rel("transform") + "?x=1",
    ],
    ids=[
        "other-folder",
        "dotdot-escape",
        "run-not-in-lineage",
        "etc-passwd",
        "proc",
        "http",
        "other-bucket",
        "query",
    ],
)
def test_load_chain_never_reads_a_link_outside_its_scope(tmp_path, tmp_path_factory, reads, link):
    # A valid state file of 'transform', pinned by the right digest, that must still not be followed.
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    planted = write(elsewhere, record("transform", upstream="extract", xcoms=EXTRACT_XCOMS))
    write(tmp_path, record("transform", run_id="manual__not_in_lineage"))
    link = link.format(tmp_path=tmp_path, elsewhere=elsewhere, elsewhere_name=elsewhere.name)
    head = write(
        tmp_path,
        record(
            "load",
            upstream="transform",
            xcoms=TRANSFORM_XCOMS,
            previous=StateRef(path=link, digest=planted.digest),
        ),
    )

    with pytest.raises(StateError) as err:
        load_chain(StateLocation(url=head.path), scope(tmp_path), key=KEY)
    message = str(err.value)
    assert message.startswith(f"The state of task 'load' (run {RUN_ID!r}) has a state link {link!r}, which ")
    assert message.endswith(": refused, not read.")
    assert not isinstance(err.value, StateMissingError)
    assert reads == [head.path]


def test_a_run_without_a_resume_point_shows_no_plan():
    # A successful run, or a failed one without a failed task: nothing would be restored or run.
    for run_facts in (
        facts(run_state="success", failed_task_id=None, resume_task_id=None, chain=None),
        facts(failed_task_id=None, resume_task_id=None, chain=None),
    ):
        assert decide(run_facts).plan.tasks == []


# --- mapped steps ---------------------------------------------------------------------------------------

MAPPED_ORDER = [("extract", PY), ("transform", PY), ("load", BASH)]


def mapped_record(task_id: str, map_index: int, **kwargs) -> StateRecord:
    """A record of one map index of ``transform`` (mapped) or of ``load`` after it."""
    rec = record(task_id, order=MAPPED_ORDER, **kwargs)
    return rec.model_copy(
        update={
            "identity": rec.identity.model_copy(update={"map_index": map_index}),
            "structure": StructureSnapshot(
                tasks=MAPPED_ORDER,
                hash=structure_hash(
                    [TaskShape("extract", PY), TaskShape("transform", PY, True), TaskShape("load", BASH)]
                ),
                mapped=["transform"],
            ),
        }
    )


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


def test_load_chain_follows_a_link_to_one_map_index_of_a_mapped_upstream(tmp_path):
    extract = write(tmp_path, mapped_record("extract", -1))
    at = f"dag_id={DAG_ID}/run_id={RUN_ID}/task_id=transform/map_index=2/attempt=1.resume.json"
    transform = write(tmp_path, mapped_record("transform", 2, upstream="extract", previous=extract), at=at)
    transform = transform.model_copy(update={"map_index": 2})
    xcoms = [XComEntry(task_id="transform", key="return_value", map_index=i, value=i * 10) for i in range(3)]
    load = mapped_record("load", -1, upstream="transform", xcoms=xcoms, previous=transform, failed=True)
    load = load.model_copy(update={"inputs": load.inputs.model_copy(update={"upstream_map_count": 3})})
    head = write(tmp_path, load)

    chain = load_chain(StateLocation(url=head.path), scope(tmp_path), key=KEY)

    restored = chain.restored_tasks()
    assert restored["transform"].map_count == 3
    assert [(x.map_index, x.value) for x in restored["transform"].xcoms] == [(0, 0), (1, 10), (2, 20)]
    plan = build_plan(
        facts(failed_task_id="load", resume_task_id="load", chain=chain, roots=scope(tmp_path).roots)
    )
    assert plan[1].mapped and [m.map_index for m in plan[1].map_indexes] == [0, 1, 2]


def test_load_chain_refuses_a_link_naming_another_map_index_than_the_file_holds(tmp_path):
    extract = write(tmp_path, mapped_record("extract", -1))
    at = f"dag_id={DAG_ID}/run_id={RUN_ID}/task_id=transform/map_index=1/attempt=1.resume.json"
    # Index 2's record stored where index 1's belongs.
    transform = write(tmp_path, mapped_record("transform", 2, upstream="extract", previous=extract), at=at)
    load = mapped_record(
        "load", -1, upstream="transform", previous=transform.model_copy(update={"map_index": 1}), failed=True
    )
    head = write(tmp_path, load)
    with pytest.raises(StateError, match="holds the state of another task attempt"):
        load_chain(StateLocation(url=head.path), scope(tmp_path), key=KEY)


def test_a_record_claiming_an_absurd_number_of_map_indexes_does_not_match_the_schema():
    rec = record("load", upstream="transform").model_dump(mode="json")
    rec["inputs"]["upstream_map_count"] = 10**9
    with pytest.raises(ValueError, match="upstream_map_count"):
        StateRecord.model_validate(rec)


# --- reading a chain side by side ---------------------------------------------------------------------


def test_load_chain_reads_the_hinted_files_side_by_side_and_each_once(tmp_path, reads, monkeypatch):
    import threading

    refs = write_chain(tmp_path)
    threads: set[str] = set()
    real = storage.read_bytes

    def spy(location, **kwargs):
        threads.add(threading.current_thread().name)
        return real(location, **kwargs)

    monkeypatch.setattr(storage, "read_bytes", spy)
    hints = [StateLocation(url=refs[t].path) for t in ("extract", "transform")]

    chain = load_chain(StateLocation(url=refs["load"].path), scope(tmp_path), key=KEY, hints=hints)

    assert [r.identity.task_id for r, _ in chain.records] == ["load", "transform", "extract"]
    assert sorted(reads) == sorted(refs[t].path for t in ("load", "transform", "extract"))
    assert all(name.startswith("resume-chain") for name in threads)


def test_a_hint_the_chain_does_not_lead_to_is_never_used(tmp_path):
    refs = write_chain(tmp_path)
    # A forged "transform" file somewhere else, hinted: the walk follows the verified link instead.
    forged = write(
        tmp_path,
        record(
            "transform",
            upstream="extract",
            xcoms=[XComEntry(task_id="extract", key="return_value", value="forged")],
        ),
        at="elsewhere/transform.resume.json",
    )
    hints = [StateLocation(url=forged.path), StateLocation(url=refs["extract"].path)]

    chain = load_chain(StateLocation(url=refs["load"].path), scope(tmp_path), key=KEY, hints=hints)

    assert chain.restored_tasks()["extract"].xcoms == EXTRACT_XCOMS


def test_an_unreadable_hint_the_chain_does_not_reach_is_no_error(tmp_path):
    refs = write_chain(tmp_path)
    broken = tmp_path / "broken.resume.json"
    broken.write_text("{not json")
    hints = [StateLocation(url=f"file://{broken}"), StateLocation(url=refs["transform"].path)]

    chain = load_chain(StateLocation(url=refs["load"].path), scope(tmp_path), key=KEY, hints=hints)

    assert len(chain.records) == 3


def test_a_hinted_file_changed_after_it_was_linked_is_still_refused(tmp_path):
    refs = write_chain(tmp_path)
    # transform's file rewritten (validly signed, other content) after load linked to it.
    write(tmp_path, record("transform", upstream="extract", xcoms=[], previous=refs["extract"]))
    hints = [StateLocation(url=refs["transform"].path), StateLocation(url=refs["extract"].path)]

    with pytest.raises(StateError, match="changed after it was referenced"):
        load_chain(StateLocation(url=refs["load"].path), scope(tmp_path), key=KEY, hints=hints)


# --- the structure's task list, kept in the root task's record -----------------------------------------


def without_task_list(rec: StateRecord) -> StateRecord:
    return rec.model_copy(update={"structure": rec.structure.model_copy(update={"tasks": []})})


def test_a_chain_takes_the_task_list_from_its_root_record(tmp_path):
    extract = write(tmp_path, record("extract"))
    transform = write(
        tmp_path,
        without_task_list(record("transform", upstream="extract", xcoms=EXTRACT_XCOMS, previous=extract)),
    )
    load = write(
        tmp_path,
        without_task_list(
            record("load", upstream="transform", xcoms=TRANSFORM_XCOMS, previous=transform, failed=True)
        ),
    )

    chain = load_chain(StateLocation(url=load.path), scope(tmp_path), key=KEY)

    assert chain.head.structure.tasks == []
    assert chain.structure.tasks == ORDER
    verdict = decide(facts(failed_task_id="load", resume_task_id="load", chain=chain))
    assert verdict.resumable, verdict.reason
    assert [s.task_id for s in verdict.plan.tasks] == ["extract", "transform", "load"]


def test_a_chain_whose_root_recorded_another_structure_is_corrupt(tmp_path):
    other = [("extract", PY), ("load", BASH)]
    extract = write(tmp_path, record("extract", order=other))
    transform = write(
        tmp_path,
        without_task_list(record("transform", upstream="extract", xcoms=EXTRACT_XCOMS, previous=extract)),
    )
    with pytest.raises(StateError, match="does not hold the structure its task recorded"):
        load_chain(StateLocation(url=transform.path), scope(tmp_path), key=KEY)

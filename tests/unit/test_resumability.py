"""
The resume verdict, the plan, the resumed run's id, and the state chain behind them.

``decide`` is pure: every test builds :class:`RunFacts` from real state records and settings, and checks
the reason code and the words a user reads in the API, the CLI and the UI.
"""

from __future__ import annotations

import hashlib
import json
import re

import pytest
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

from airflow_resume_provider.exceptions import (
    NonLinearDagError,
    ResumeConfigError,
    StateError,
    StateMissingError,
)
from airflow_resume_provider.resumability import (
    INVALID_CONFIG,
    INVALID_RESUME_POINT,
    MANUAL_KILL,
    MAX_RUN_ID_LENGTH,
    NO_FAILED_TASK,
    RESUME_DISABLED,
    RUN_NOT_FAILED,
    STATE_INVALID,
    STATE_MISSING,
    STATE_NOT_RECORDED,
    STATE_UNREACHABLE,
    STRUCTURE_CHANGED,
    PlanStep,
    RunFacts,
    build_plan,
    decide,
    resumed_run_id_for,
)
from airflow_resume_provider.settings import ResumeSettings, parse_settings
from airflow_resume_provider.state.chain import StateChain, load_chain
from airflow_resume_provider.state.model import (
    FailureRecord,
    Inputs,
    StateRecord,
    StateRef,
    StructureSnapshot,
    TaskIdentity,
    XComEntry,
)
from airflow_resume_provider.state.paths import StateLocation
from airflow_resume_provider.state.storage import encode
from airflow_resume_provider.structure import TaskShape, linear_order, structure_hash

DAG_ID = "etl"
RUN_ID = "manual__2024-01-02T03:04:05+00:00"
WHERE = f"DAG {DAG_ID!r}, run {RUN_ID!r}"
PY = "PythonOperator"
BASH = "BashOperator"
ORDER = [("extract", PY), ("transform", PY), ("load", BASH)]
FOLDER = f"file:///opt/airflow/logs/dag_id={DAG_ID}/run_id={RUN_ID}"
RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.~:+-]+$")
KEY = b"state-signing-key"


def shapes(order: list[tuple[str, str]]) -> list[TaskShape]:
    return [TaskShape(t, k) for t, k in order]


def url(task_id: str) -> str:
    return f"{FOLDER}/task_id={task_id}/attempt=1.resume.json"


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
) -> StateRecord:
    return StateRecord(
        written_at="2024-01-02T03:05:00+00:00",
        identity=TaskIdentity(dag_id=DAG_ID, run_id=RUN_ID, task_id=task_id, try_number=1),
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
    )
    values.update(overrides)
    return RunFacts(**values)


def refused(verdict, code: str) -> str:
    assert verdict.resumable is False
    assert verdict.reason_code == code
    assert verdict.dag_id == DAG_ID
    assert verdict.run_id == RUN_ID
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
    assert [(s.task_id, s.action, s.resume_point) for s in verdict.plan] == [
        ("extract", "restored", False),
        ("transform", "run", True),
        ("load", "run", False),
    ]
    assert verdict.lineage == {"root_run_id": RUN_ID}
    # The API returns the verdict as JSON.
    assert json.loads(json.dumps(verdict.to_dict()))["plan"]["tasks"][0]["source"] == url("transform")


def test_changed_task_code_with_same_ids_order_and_types_is_resumable():
    # The current order is built anew (as from a re-parsed DAG file whose callables changed).
    verdict = decide(
        facts(current_order=[TaskShape("extract", PY), TaskShape("transform", PY), TaskShape("load", BASH)])
    )
    assert verdict.resumable is True


def test_verdict_names_an_existing_resumed_run():
    verdict = decide(facts(resumed_run_id=f"resume__{RUN_ID}__1"))
    assert verdict.resumed_run_id == f"resume__{RUN_ID}__1"


# --- each reason --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings",
    [None, parse_settings(False, dag_id=DAG_ID), parse_settings({"enabled": False}, dag_id=DAG_ID)],
    ids=["no-param", "param-false", "enabled-false"],
)
def test_resume_disabled(settings):
    reason = refused(decide(facts(settings=settings)), RESUME_DISABLED)
    assert reason.startswith(f"{WHERE}: resume is not enabled for this DAG.")
    assert "params={'resume': True}" in reason


def test_invalid_resume_config_reports_the_param_error():
    with pytest.raises(ResumeConfigError) as err:
        parse_settings({"retries": -1, "retry_dealy": 5}, dag_id=DAG_ID)
    verdict = decide(facts(settings=None, settings_error=str(err.value)))

    reason = refused(verdict, INVALID_CONFIG)
    assert reason == str(err.value)
    assert f"DAG {DAG_ID!r}" in reason
    assert "'retries'" in reason
    assert "'retry_dealy': unknown key" in reason


@pytest.mark.parametrize("state", ["success", "running", "queued"])
def test_run_not_failed(state):
    reason = refused(decide(facts(run_state=state)), RUN_NOT_FAILED)
    assert reason == f"{WHERE}: the run is {state}; only failed runs can be resumed."


def test_no_failed_task():
    reason = refused(decide(facts(failed_task_id=None, resume_task_id=None, chain=None)), NO_FAILED_TASK)
    assert reason.startswith(f"{WHERE}: no task of the run failed")
    assert "timeout" in reason
    assert "no failed task to resume at" in reason


def test_invalid_resume_point_is_passed_through():
    message = (
        f"{WHERE}: cannot resume at 'load', which is upstream_failed; choose the failed task "
        "'transform' or a task before it that succeeded."
    )
    verdict = decide(facts(resume_task_id="load", resume_point_error=message, chain=None))
    assert refused(verdict, INVALID_RESUME_POINT) == message
    assert verdict.failure is None


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (
            STATE_MISSING,
            f"{WHERE}: no state file for task 'transform' (try 1) at {url('transform')}; the task ran before "
            "resume was enabled, or the file was deleted.",
        ),
        (
            STATE_INVALID,
            f"{WHERE}: State file {url('transform')} failed its integrity check: its content was changed after "
            "it was written (corruption or tampering), or it was signed with another key.",
        ),
        (
            STATE_NOT_RECORDED,
            f"{WHERE}: the state of task 'transform' was not recorded: XCom value of 'extract' is not "
            "JSON-serializable",
        ),
        (
            STATE_UNREACHABLE,
            f"{WHERE}: the state folder cannot be reached: Could not read state file {url('transform')}: "
            "timed out. Try again when it is back.",
        ),
    ],
)
def test_state_errors_are_passed_through(code, message):
    verdict = decide(facts(chain=None, state_error_code=code, state_error=message))
    assert refused(verdict, code) == message
    assert verdict.failure is None


def test_manual_kill():
    message = (
        f"{WHERE}: task 'transform' was set to failed by admin (patch_task_instance at 2024-01-02 03:06:00); "
        "a run stopped on purpose is never resumed. Trigger a new run instead."
    )
    assert refused(decide(facts(manual_kill=message)), MANUAL_KILL) == message


def test_structure_changed_when_the_dag_is_no_longer_linear():
    with DAG(DAG_ID, schedule=None) as dag:
        extract, transform, load = (EmptyOperator(task_id=t) for t, _ in ORDER)
        extract >> [transform, load]
    with pytest.raises(NonLinearDagError) as err:
        linear_order(dag)

    reason = refused(decide(facts(current_order=None, current_order_error=str(err.value))), STRUCTURE_CHANGED)
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
    reason = refused(decide(facts(current_order=shapes(current))), STRUCTURE_CHANGED)
    assert reason == (
        f"{WHERE}: the DAG's structure changed since the run: {'; '.join(expected)}. A run can only be "
        "resumed on the same tasks in the same order (changing a task's code or arguments is fine). "
        "Trigger a new run instead."
    )


def test_refused_verdict_still_reports_the_recorded_failure():
    verdict = decide(facts(current_order=shapes([("extract", PY), ("transform", PY)])))
    assert verdict.reason_code == STRUCTURE_CHANGED
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
        state_error_code=STATE_MISSING,
        state_error=f"{WHERE}: no state file for task 'transform'.",
        manual_kill=f"{WHERE}: the run was set to failed by admin.",
        current_order_error=f"DAG {DAG_ID!r} has resume enabled but is not linear.",
    )
    fixes = [
        ("settings_error", None, INVALID_CONFIG),
        ("settings", ResumeSettings(), RESUME_DISABLED),
        ("run_state", "failed", RUN_NOT_FAILED),
        ("failed_task_id", "transform", NO_FAILED_TASK),
        ("resume_point_error", None, INVALID_RESUME_POINT),
        ("state_error_code", None, STATE_MISSING),
        ("manual_kill", None, MANUAL_KILL),
        ("current_order_error", None, STRUCTURE_CHANGED),
    ]
    for field_name, fixed, expected in fixes:
        assert decide(problems).reason_code == expected, f"before fixing {field_name}"
        setattr(problems, field_name, fixed)
    assert decide(problems).resumable is True


def test_disabled_wins_over_run_not_failed():
    assert decide(facts(settings=None, run_state="success")).reason_code == RESUME_DISABLED


def test_manual_kill_is_reported_before_a_structure_change():
    killed = f"{WHERE}: the run was set to failed by admin (patch_dag_run at 2024-01-02 03:06:00)."
    changed = facts(manual_kill=killed, current_order=shapes([("extract", PY), ("transform", PY)]))
    assert decide(changed).reason == killed
    assert decide(facts(manual_kill=killed, current_order_error="not linear")).reason_code == MANUAL_KILL


# --- the plan -----------------------------------------------------------------------------------------


def test_plan_restores_tasks_before_the_resume_point_from_the_record_holding_their_xcoms():
    assert build_plan(facts()) == [
        PlanStep("extract", PY, "restored", source=url("transform"), xcom_keys=["return_value", "row_count"]),
        PlanStep("transform", PY, "run", resume_point=True),
        PlanStep("load", BASH, "run"),
    ]


def test_plan_over_a_three_link_chain():
    plan = build_plan(facts(failed_task_id="load", resume_task_id="load", chain=load_chain_in_memory()))
    assert plan == [
        PlanStep("extract", PY, "restored", source=url("transform"), xcom_keys=["return_value", "row_count"]),
        PlanStep(
            "transform", PY, "restored", source=url("load"), xcom_keys=["audit", "rejected", "return_value"]
        ),
        PlanStep("load", BASH, "run", resume_point=True),
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
    plan = build_plan(facts(chain=None, state_error_code=STATE_MISSING, state_error="missing"))
    assert plan == [
        PlanStep("extract", PY, "restored"),
        PlanStep("transform", PY, "run", resume_point=True),
        PlanStep("load", BASH, "run"),
    ]


def test_plan_is_empty_without_state_or_order():
    assert build_plan(facts(chain=None, current_order=None, current_order_error="not linear")) == []


# --- the resumed run's id -----------------------------------------------------------------------------


@pytest.mark.parametrize("conf", [None, {}, {"day": "2024-01-01"}, {"__resume__": {"resume_count": 1}}])
def test_first_resume_of_a_run(conf):
    assert resumed_run_id_for(RUN_ID, conf) == (f"resume__{RUN_ID}__1", RUN_ID, 1)


def test_resuming_a_resumed_run_counts_from_its_root():
    conf = {"day": "2024-01-01", "__resume__": {"root_run_id": RUN_ID, "resume_count": 2}}
    assert resumed_run_id_for(f"resume__{RUN_ID}__2", conf) == (f"resume__{RUN_ID}__3", RUN_ID, 3)


@pytest.mark.parametrize(
    "source_run_id",
    ["manual run / with spaces", "scheduled__2024-01-01 00:00:00", "ünïcode__run", "x" * 300],
    ids=["spaces-slash", "space", "non-ascii", "too-long"],
)
def test_unusable_run_ids_are_hashed_into_a_valid_deterministic_id(source_run_id):
    run_id, root, count = resumed_run_id_for(source_run_id, None)

    digest = hashlib.sha256(source_run_id.encode()).hexdigest()[:24]
    assert run_id == f"resume__{digest}__1"
    assert RUN_ID_PATTERN.match(run_id)
    assert len(run_id) <= MAX_RUN_ID_LENGTH
    assert (root, count) == (source_run_id, 1)
    assert resumed_run_id_for(source_run_id, None) == (run_id, root, count)
    # The next resume of the resumed run keeps the same hashed root.
    marker = {"__resume__": {"root_run_id": source_run_id, "resume_count": 1}}
    assert resumed_run_id_for(run_id, marker) == (f"resume__{digest}__2", source_run_id, 2)


def test_different_unusable_run_ids_get_different_ids():
    assert resumed_run_id_for("run a", None)[0] != resumed_run_id_for("run b", None)[0]


def test_run_id_length_limit_is_inclusive():
    fits = "r" * (MAX_RUN_ID_LENGTH - len("resume__") - len("__1"))
    assert resumed_run_id_for(fits, None)[0] == f"resume__{fits}__1"
    assert len(resumed_run_id_for(fits, None)[0]) == MAX_RUN_ID_LENGTH

    too_long = fits + "r"
    hashed = resumed_run_id_for(too_long, None)[0]
    assert hashed == f"resume__{hashlib.sha256(too_long.encode()).hexdigest()[:24]}__1"


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


def write(tmp_path, task_id: str, rec: StateRecord, key: bytes = KEY) -> StateRef:
    path = tmp_path / f"{task_id}.resume.json"
    data, digest = encode(rec, key)
    path.write_bytes(data)
    return StateRef(path=f"file://{path}", digest=digest)


def write_chain(tmp_path) -> dict[str, StateRef]:
    refs = {"extract": write(tmp_path, "extract", record("extract"))}
    refs["transform"] = write(
        tmp_path,
        "transform",
        record("transform", upstream="extract", xcoms=EXTRACT_XCOMS, previous=refs["extract"]),
    )
    refs["load"] = write(
        tmp_path,
        "load",
        record("load", upstream="transform", xcoms=TRANSFORM_XCOMS, previous=refs["transform"], failed=True),
    )
    return refs


def test_load_chain_follows_three_linked_files(tmp_path):
    refs = write_chain(tmp_path)

    chain = load_chain(StateLocation(url=refs["load"].path), key=KEY)

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


def test_load_chain_rejects_a_tampered_middle_file(tmp_path):
    refs = write_chain(tmp_path)
    middle = tmp_path / "transform.resume.json"
    document = json.loads(middle.read_bytes())
    document["inputs"]["xcoms"][0]["value"] = [{"id": 1, "name": "Mallory"}]
    middle.write_text(json.dumps(document))

    with pytest.raises(StateError, match="integrity") as err:
        load_chain(StateLocation(url=refs["load"].path), key=KEY)
    assert refs["transform"].path in str(err.value)
    assert not isinstance(err.value, StateMissingError)


def test_load_chain_rejects_a_file_rewritten_after_it_was_referenced(tmp_path):
    refs = write_chain(tmp_path)
    # A valid, correctly digested file, but not the one the downstream record pinned.
    other = [XComEntry(task_id="extract", key="return_value", value=[{"id": 2}])]
    write(
        tmp_path, "transform", record("transform", upstream="extract", xcoms=other, previous=refs["extract"])
    )

    with pytest.raises(StateError, match="changed after it was referenced") as err:
        load_chain(StateLocation(url=refs["load"].path), key=KEY)
    assert "'transform'" in str(err.value)
    assert refs["transform"].path in str(err.value)


def test_load_chain_without_the_head_file_is_missing_state(tmp_path):
    location = StateLocation(url=f"file://{tmp_path}/load.resume.json")
    with pytest.raises(StateMissingError, match="does not exist") as err:
        load_chain(location, key=KEY)
    assert location.url in str(err.value)


def test_load_chain_with_a_missing_middle_file_is_invalid_not_missing_state(tmp_path):
    refs = write_chain(tmp_path)
    (tmp_path / "transform.resume.json").unlink()

    with pytest.raises(StateError, match="does not exist") as err:
        load_chain(StateLocation(url=refs["load"].path), key=KEY)
    assert not isinstance(err.value, StateMissingError)
    assert "'transform'" in str(err.value)


def test_load_chain_when_the_upstream_state_was_not_recorded(tmp_path):
    head = write(tmp_path, "load", record("load", upstream="transform", xcoms=TRANSFORM_XCOMS, previous=None))

    with pytest.raises(StateError, match="resume_capture_error") as err:
        load_chain(StateLocation(url=head.path), key=KEY)
    assert "'load'" in str(err.value)
    assert "'transform'" in str(err.value)


def test_load_chain_rejects_a_link_to_another_task(tmp_path):
    extract = write(tmp_path, "extract", record("extract"))
    head = write(
        tmp_path, "load", record("load", upstream="transform", xcoms=TRANSFORM_XCOMS, previous=extract)
    )

    with pytest.raises(StateError, match="belongs to task 'extract', not to 'transform'"):
        load_chain(StateLocation(url=head.path), key=KEY)


def test_a_run_without_a_resume_point_shows_no_plan():
    # A successful run, or a failed one without a failed task: nothing would be restored or run.
    for run_facts in (
        facts(run_state="success", failed_task_id=None, resume_task_id=None, chain=None),
        facts(failed_task_id=None, resume_task_id=None, chain=None),
    ):
        assert decide(run_facts).plan == []

"""Builders of the state records, chains and facts the unit tests share."""

from __future__ import annotations

from airflow_resume_provider.resumability import RunFacts
from airflow_resume_provider.resume_param import parse_settings
from airflow_resume_provider.state.chain import ChainScope, StateChain
from airflow_resume_provider.state.model import (
    FailureRecord,
    Inputs,
    StateRecord,
    StateRef,
    StructureSnapshot,
    TaskIdentity,
    XComEntry,
)
from airflow_resume_provider.state.paths import StateRoot
from airflow_resume_provider.state.storage import encode
from airflow_resume_provider.structure import TaskShape, structure_hash

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

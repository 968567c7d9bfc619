"""The state record written before every task attempt. Versioned; JSON keys are persisted, never rename."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

#: Bump when the record changes shape; readers keep accepting every older version.
#: 2: the structure's task list is in the root task's record only (the others keep its hash).
SCHEMA_VERSION = 2
#: The most map indexes a record may say a mapped task ran as.
MAX_MAP_COUNT = 100_000


class _Record(BaseModel):
    # Unknown keys from a newer minor writer are kept, so that integrity checks and rewrites preserve them.
    model_config = ConfigDict(extra="allow")


class TaskIdentity(_Record):
    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1
    try_number: int


class StructureSnapshot(_Record):
    #: ``[[task_id, task_type], ...]`` from the root to the leaf. From schema 2 on only the root task's
    #: record lists them (the others would repeat them, and a run's state would grow with the square of
    #: its length); every record has the hash, and a chain takes the list from its root.
    tasks: list[tuple[str, str]] = Field(default_factory=list)
    hash: str
    #: The mapped steps (``.expand()``) among ``tasks``. Absent in records of older versions: none.
    mapped: list[str] = Field(default_factory=list)


class XComEntry(_Record):
    task_id: str
    key: str
    map_index: int = -1
    #: The value exactly as Airflow stores it (serde form, or a custom backend's reference).
    value: Any


class Inputs(_Record):
    upstream_task_id: str | None = None
    #: The XComs of the direct upstream task (of each of its map indexes when it is mapped, in map-index
    #: order); earlier tasks' XComs are reached through ``previous``.
    xcoms: list[XComEntry] = Field(default_factory=list)
    #: How many map indexes the upstream task ran as, when it is mapped (None: not mapped). Bounded
    #: far above Airflow's ``[core] max_map_length`` (1024): a record cannot make a plan huge.
    upstream_map_count: int | None = Field(default=None, ge=0, le=MAX_MAP_COUNT)
    conf: dict[str, Any] = Field(default_factory=dict)
    #: The params as this task saw them (its own task-level params included).
    params: dict[str, Any] = Field(default_factory=dict)
    #: The params of the run as the DAG defines them (conf applied, no task-level params): what every
    #: task of the run starts from. Absent in records of older versions.
    run_params: dict[str, Any] | None = None
    logical_date: str | None = None
    data_interval_start: str | None = None
    data_interval_end: str | None = None
    run_after: str | None = None


class StateRef(_Record):
    """Points at another state file and pins its content by digest."""

    path: str
    digest: str
    #: The map index of the attempt the file belongs to (-1: not mapped).
    map_index: int = -1


class Lineage(_Record):
    parent_run_id: str
    root_run_id: str
    resume_count: int
    resumed_at_task_id: str | None = None


class FailureRecord(_Record):
    exception_type: str
    message: str
    try_number: int
    recorded_at: str
    #: ``timeout`` or ``error`` (:mod:`airflow_resume_provider.causes`). Absent in records of older
    #: versions: derived from ``exception_type`` when read.
    cause: str | None = None


class Integrity(_Record):
    algorithm: Literal["sha256", "hmac-sha256"]
    digest: str


class StateRecord(_Record):
    schema_version: int = SCHEMA_VERSION
    written_at: str
    identity: TaskIdentity
    structure: StructureSnapshot
    inputs: Inputs
    #: The upstream task's state file, whose inputs (and its ``previous``) cover every earlier task.
    previous: StateRef | None = None
    lineage: Lineage | None = None
    failure: FailureRecord | None = None
    integrity: Integrity | None = None

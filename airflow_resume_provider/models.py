"""
The provider's answers and reason codes: the models of the REST API, the CLI's JSON and the page.

This module imports nothing else of the provider, so every other module may import it. Field names
and reason codes are part of the API: never rename them.
"""

from __future__ import annotations

import enum
import sys
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

if sys.version_info >= (3, 11):
    from enum import StrEnum
else:  # pragma: no cover - Python 3.10

    class StrEnum(str, enum.Enum):
        def __str__(self) -> str:
            return str(self.value)


class ReasonCode(StrEnum):
    """Why a run is not resumed (``reason_code`` in the API, the CLI and metrics). Never rename."""

    RESUME_DISABLED = "resume_disabled"
    #: The DAG's ``resume`` param is invalid.
    INVALID_CONFIG = "invalid_resume_config"
    RUN_NOT_FAILED = "run_not_failed"
    NO_FAILED_TASK = "no_failed_task"
    INVALID_RESUME_POINT = "invalid_resume_point"
    STATE_NOT_RECORDED = "state_not_recorded"
    STATE_MISSING = "state_missing"
    STATE_INVALID = "state_invalid"
    #: The storage is down or unreachable: try again.
    STATE_UNREACHABLE = "state_unreachable"
    STATE_EXPIRED = "state_expired"
    MANUAL_KILL = "manual_kill"
    STRUCTURE_CHANGED = "structure_changed"
    PARAMS_INVALID = "params_invalid"
    #: A trigger step's child run cannot be resumed (the child's reason follows); ``rerun_children``
    #: triggers a fresh child run instead.
    CHILD_NOT_RESUMABLE = "child_not_resumable"
    #: Neither ``[resume] signing_key`` nor ``[api_auth] jwt_secret`` can be read on this component.
    SIGNING_UNAVAILABLE = "signing_unavailable"
    #: The run id reserved for the resumed run is taken by a run the provider did not create.
    RUN_ID_TAKEN = "run_id_taken"
    #: A ``[resume]`` option that protects data or security has a value the provider cannot use.
    PROVIDER_CONFIG_INVALID = "provider_config_invalid"
    #: The DAG or the run does not exist.
    RUN_NOT_FOUND = "run_not_found"
    #: Creating the resumed run failed unexpectedly (the message says how).
    RESUME_FAILED = "resume_failed"
    #: More runs than one request may resume, or a malformed request.
    BAD_REQUEST = "bad_request"
    #: Inputs may not be changed: ``[core] dag_run_conf_overrides_params`` is off.
    INPUT_CHANGES_DISABLED = "input_changes_disabled"
    #: The run was already resumed with other inputs; a resume with these would be a second run.
    RESUMED_WITH_OTHER_INPUTS = "resumed_with_other_inputs"


class InputChange(BaseModel):
    """
    One input a resume changes: a run-level param (``source: "params"``) or a top-level conf key
    (``source: "conf"``), from its value in the failed run to the new one. Values of names Airflow's
    secrets masker treats as sensitive are masked. Persisted in the signed run record: never rename.
    """

    model_config = ConfigDict(frozen=True, populate_by_name=True, serialize_by_alias=True)

    param: str = Field(description="The param's (or conf key's) name.")
    from_: Any = Field(default=None, alias="from", description="Its value in the failed run (masked).")
    to: Any = Field(default=None, description="Its value in the resumed run (masked).")
    source: str = Field(default="params", description="'params' or 'conf': where the request changed it.")


class CarriedEntry(BaseModel):
    """A task state store entry (e.g. an external job id) copied into the resumed run."""

    model_config = ConfigDict(frozen=True)

    key: str
    value: str = Field(description="The stored value, secrets masked, shortened if long.")
    map_index: int = -1


#: What a resume does about a trigger step's child run (``ChildStep.action``).
CHILD_RESUME = "resume"
CHILD_RERUN = "rerun"
CHILD_TRIGGER = "trigger"


class ChildStep(BaseModel):
    """
    The child run of a ``TriggerDagRunOperator`` step at the resume point, and what a resume does about
    it. Part of the REST API and the CLI's JSON: never rename fields.
    """

    model_config = ConfigDict(frozen=True)

    dag_id: str
    dag_run_id: str | None = Field(description="The child run the failed step triggered (None: none).")
    resumable: bool
    reason_code: ReasonCode | None = None
    reason: str | None = None
    action: str = Field(
        description="'resume' (the child run is resumed and the step waits for that run), 'rerun' (the "
        "step triggers a fresh full child run: rerun_children) or 'trigger' (the step runs as usual: its "
        "child run succeeded, or it triggered none)."
    )
    resumed_run_id: str | None = Field(
        default=None,
        description="The run that resumed the child run already, if any: the step attaches to it.",
    )
    plan: Plan | None = Field(default=None, description="The child run's own plan (recursively).")


class MapIndexStep(BaseModel):
    """What a resume does to one map index of a mapped step."""

    model_config = ConfigDict(frozen=True)

    map_index: int
    action: str = Field(description="'restored' (not run again; its results kept) or 'run'.")
    state: str | None = Field(default=None, description="The index's state in the failed run.")
    child: ChildStep | None = Field(
        default=None, description="A mapped trigger step's child run of this index."
    )


class PlanStep(BaseModel):
    """What a resume does to one task. Part of the REST API and the CLI's JSON: never rename fields."""

    model_config = ConfigDict(frozen=True)

    task_id: str
    task_type: str
    action: str = Field(description="'restored' (not run; results restored from source) or 'run'.")
    resume_point: bool = False
    source: str | None = Field(default=None, description="State file the restored values come from.")
    xcom_keys: list[str] = Field(default_factory=list)
    carries: list[CarriedEntry] = Field(
        default_factory=list,
        description="Task state store entries copied into the resumed run (the task reattaches to them).",
    )
    mapped: bool = Field(default=False, description="A mapped step (.expand), run as N map indexes.")
    map_indexes: list[MapIndexStep] = Field(
        default_factory=list,
        description="For a mapped step restored or resumed at: each map index and what happens to it.",
    )
    child: ChildStep | None = Field(
        default=None, description="A trigger step at the resume point: its child run and what happens to it."
    )


class Plan(BaseModel):
    model_config = ConfigDict(frozen=True)

    resume_task_id: str | None = Field(description="The task the resumed run starts at.")
    tasks: list[PlanStep] = Field(description="Every task in order, with what a resume does to it.")


class Verdict(BaseModel):
    """
    The verdict on one run: the service's result and the body of the REST API and of the CLI's JSON
    output (one model for all three). Field names are part of the API: never rename.
    """

    model_config = ConfigDict(frozen=True)

    dag_id: str
    dag_run_id: str
    resumable: bool
    reason_code: ReasonCode | None
    reason: str | None
    failed_task_id: str | None
    resume_task_id: str | None
    failure: dict[str, Any] | None
    plan: Plan
    resumed_run_id: str | None = Field(description="The run that already resumed this one, if any.")
    lineage: dict[str, Any]
    warnings: list[str] = Field(
        default_factory=list, description="What the user should know that does not decide the verdict."
    )

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


ChildStep.model_rebuild()
MapIndexStep.model_rebuild()
PlanStep.model_rebuild()


class ResumePreview(BaseModel):
    """
    A dry run of a resume (``"dry_run": true``): the verdict, the run-level params the resumed run would
    have (sensitive values masked) and what changes. Nothing is created.
    """

    model_config = ConfigDict(frozen=True)

    dry_run: bool = True
    verdict: Verdict
    params: dict[str, Any] = Field(description="The resumed run's run-level params (masked).")
    changes: list[InputChange] = Field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)

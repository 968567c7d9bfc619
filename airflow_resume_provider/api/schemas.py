"""Request and response bodies of the REST API."""

from __future__ import annotations

from typing import Any

from airflow.models.base import ID_LEN
from pydantic import BaseModel, ConfigDict, Field

#: The longest task id Airflow stores (``airflow.models.base.ID_LEN``); longer ones are refused (422).
TASK_ID_MAX_LENGTH = ID_LEN


class ResumeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    from_task_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=TASK_ID_MAX_LENGTH,
        description="Resume at this task instead of the failed one.",
    )


class PlanStepOut(BaseModel):
    task_id: str
    task_type: str
    action: str = Field(description="'restored' (not run; results restored) or 'run'.")
    resume_point: bool
    source: str | None = Field(description="State file the restored values come from.")
    xcom_keys: list[str]


class PlanOut(BaseModel):
    resume_task_id: str | None = Field(description="The task the resumed run starts at.")
    tasks: list[PlanStepOut] = Field(description="Every task in order, with what a resume does to it.")


class VerdictOut(BaseModel):
    dag_id: str
    dag_run_id: str
    resumable: bool
    reason_code: str | None
    reason: str | None
    failed_task_id: str | None
    resume_task_id: str | None
    failure: dict[str, Any] | None
    plan: PlanOut
    resumed_run_id: str | None = Field(description="The run that already resumed this one, if any.")
    lineage: dict[str, Any]
    warnings: list[str] = Field(
        default_factory=list, description="What the user should know that does not decide the verdict."
    )


class ResumeOut(BaseModel):
    dag_id: str
    dag_run_id: str = Field(description="The resumed run.")
    created: bool
    source_run_id: str
    resume_task_id: str | None
    root_run_id: str
    resume_count: int


class ErrorOut(BaseModel):
    detail: str
    reason_code: str | None = None

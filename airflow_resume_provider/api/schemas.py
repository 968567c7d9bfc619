"""Request and error bodies of the REST API (answers are the service's own models: Verdict, ResumeOutcome)."""

from __future__ import annotations

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


class ErrorOut(BaseModel):
    detail: str
    reason_code: str | None = None

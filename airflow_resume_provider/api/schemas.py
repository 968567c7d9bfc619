"""Request and error bodies of the REST API (answers are the service's own models: Verdict, ResumeOutcome)."""

from __future__ import annotations

from datetime import datetime  # noqa: TC003 - pydantic resolves it at runtime
from typing import Annotated, Any, Literal

from airflow.models.base import ID_LEN
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from airflow_resume_provider.bulk import MAX_RUNS_PER_REQUEST
from airflow_resume_provider.compat import as_utc
from airflow_resume_provider.models import ReasonCode  # noqa: TC001 - pydantic resolves it at runtime

#: The longest task id Airflow stores (``airflow.models.base.ID_LEN``); longer ones are refused (422).
TASK_ID_MAX_LENGTH = ID_LEN
#: The longest run id Airflow stores.
RUN_ID_MAX_LENGTH = ID_LEN


class ResumeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    from_task_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=TASK_ID_MAX_LENGTH,
        description="Resume at this task instead of the failed one.",
    )
    params: dict[str, Any] | None = Field(
        default=None,
        description="Run-level params to change: the failed run's values with these applied, validated "
        "against the DAG's current params.",
    )
    conf: dict[str, Any] | None = Field(
        default=None, description="Top-level keys of the run's conf to change (merged into it)."
    )
    dry_run: bool = Field(
        default=False,
        description="Only answer the verdict, the merged params and the changes; create nothing (read "
        "access is enough).",
    )
    rerun_children: bool = Field(
        default=False,
        description="A trigger step whose child run cannot be resumed triggers a fresh full child run "
        "instead of refusing the resume.",
    )


class ErrorOut(BaseModel):
    detail: str
    reason_code: ReasonCode | None = None


class BulkResumeRequest(BaseModel):
    """Which failed runs to resume: either ``dag_run_ids``, or ``state: "failed"`` with an optional window."""

    model_config = ConfigDict(extra="forbid")

    dag_run_ids: list[Annotated[str, Field(min_length=1, max_length=RUN_ID_MAX_LENGTH)]] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_RUNS_PER_REQUEST,
        description=f"The runs to resume, at most {MAX_RUNS_PER_REQUEST}.",
    )
    state: Literal["failed"] | None = Field(
        default=None, description='"failed": every failed run of the DAG that ended in [since, until].'
    )
    since: datetime | None = Field(default=None, description="Runs that ended at or after (no zone: UTC).")
    until: datetime | None = Field(default=None, description="Runs that ended at or before (no zone: UTC).")
    dry_run: bool = Field(default=False, description="Only say what would happen; create nothing.")
    rerun_children: bool = Field(
        default=False,
        description="A trigger step whose child run cannot be resumed triggers a fresh full child run.",
    )
    params: dict[str, Any] | None = Field(default=None, description="Not accepted: see below.")
    conf: dict[str, Any] | None = Field(default=None, description="Not accepted: see below.")

    @field_validator("params", "conf")
    @classmethod
    def _no_changed_inputs(cls, value: dict[str, Any] | None) -> None:
        """Changed inputs are for one run at a time: each run's params are its own."""
        if value is not None:
            raise ValueError(
                "a bulk resume does not change inputs; resume the runs one by one with params or conf"
            )
        return None

    @field_validator("since", "until")
    @classmethod
    def _in_utc_range(cls, moment: datetime | None) -> datetime | None:
        """A time Airflow can store: in UTC, within years 1 to 9999 (a far zone may push it out)."""
        if moment is None:
            return None
        try:
            return as_utc(moment)
        except (OverflowError, ValueError):
            raise ValueError("outside the times Airflow can store (years 1 to 9999, in UTC)") from None

    @model_validator(mode="after")
    def _one_selection(self) -> BulkResumeRequest:
        if self.dag_run_ids is not None and (self.state or self.since or self.until):
            raise ValueError("give either dag_run_ids or state (with since/until), not both")
        if self.dag_run_ids is None and self.state is None:
            raise ValueError('give dag_run_ids, or state "failed" (with since/until)')
        if self.since and self.until and as_utc(self.since) > as_utc(self.until):  # type: ignore[operator]
            raise ValueError("since is after until")
        return self

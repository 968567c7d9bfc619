"""The per-DAG ``resume`` param: its model and how it is read from a DAG."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
)

from airflow_resume_provider.causes import ALL_CAUSES, CauseName
from airflow_resume_provider.exceptions import ResumeConfigError
from airflow_resume_provider.persisted import PARAM_NAME

if TYPE_CHECKING:
    from collections.abc import Mapping

#: The longest automatic retry delay: one week.
MAX_RETRY_DELAY = 7 * 24 * 3600.0


class ResumeSettings(BaseModel):
    """What ``params={"resume": ...}`` asks for. Unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: StrictBool = True
    retries: StrictInt = Field(default=0, ge=0, le=100)
    retry_delay: StrictFloat = Field(default=0.0, ge=0, le=MAX_RETRY_DELAY, allow_inf_nan=False)
    on_retry: StrictBool = False
    #: Retry only failures whose exception type name is listed (empty: any failure).
    retry_exceptions: list[StrictStr] = Field(default_factory=list)
    #: Retry only failures whose message matches this regular expression (re.search).
    retry_message_pattern: StrictStr | None = None
    #: Stop retrying when the same task fails with the same error twice in a row.
    stop_on_repeated_error: StrictBool = True
    #: Copy the task state store entries (e.g. external job ids) of the tasks that run again into the
    #: resumed run, so durable operators reattach to their jobs (Airflow 3.3 and later).
    carry_task_state: StrictBool = True
    #: The failure causes retried automatically (``infrastructure``, ``timeout``, ``error``): all by default.
    retry_on: list[CauseName] = Field(default_factory=lambda: list(ALL_CAUSES), min_length=1)
    #: Automatic retries of a run whose trigger step's child run cannot be resumed trigger a fresh child
    #: run instead of stopping.
    rerun_children: StrictBool = False

    @field_validator("retry_message_pattern")
    @classmethod
    def _compiles(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as err:
                raise ValueError(f"not a valid regular expression: {err}") from None
        return pattern


DISABLED = ResumeSettings(enabled=False)

ACCEPTED_KEYS = (
    "enabled (bool), retries (int 0-100), retry_delay (seconds, 0 to 604800), on_retry (bool), "
    "retry_exceptions (list of exception type names), retry_message_pattern (regex), "
    "stop_on_repeated_error (bool), carry_task_state (bool), retry_on (list of failure causes: "
    "'infrastructure', 'timeout', 'error'), rerun_children (bool)"
)


def parse_settings(value: Any, *, dag_id: str) -> ResumeSettings:
    """
    Turn the raw ``resume`` param value into settings.

    :param value: ``None``/``False`` (disabled), ``True`` (defaults) or a mapping of keys.
    :param dag_id: used in the error message.
    :raises ResumeConfigError: naming the DAG, the key and what is accepted.
    """
    if value is None or value is False:
        return DISABLED
    if value is True:
        return ResumeSettings()
    if not isinstance(value, dict):
        raise ResumeConfigError(
            f"DAG {dag_id!r}: params['{PARAM_NAME}'] must be true, false or a mapping with the keys "
            f"{ACCEPTED_KEYS}; got {type(value).__name__} {value!r}."
        )
    try:
        return ResumeSettings.model_validate(value)
    except ValidationError as err:
        problems = "; ".join(_problems(err))
        raise ResumeConfigError(
            f"DAG {dag_id!r}: invalid params['{PARAM_NAME}']: {problems}. Accepted keys: {ACCEPTED_KEYS}."
        ) from None


def _problems(err: ValidationError) -> list[str]:
    """One line per offending key; a union's per-branch errors are merged into one for the key."""
    seen: dict[str, str] = {}
    for error in err.errors():
        key = str(error["loc"][0]) if error["loc"] else "(value)"
        seen.setdefault(key, _describe(error))
    return [f"key {key!r}: {problem}" for key, problem in seen.items()]


def _describe(error: Mapping[str, Any]) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key"
    return f"{error['msg']} (got {error.get('input')!r})"


def raw_param_value(dag: Any) -> Any:
    """The DAG-level default of the ``resume`` param, for SDK and serialized DAGs alike, or None."""
    params = getattr(dag, "params", None)
    if not params or PARAM_NAME not in params:
        return None
    get_param = getattr(params, "get_param", None)
    param = get_param(PARAM_NAME) if get_param else params[PARAM_NAME]
    return getattr(param, "value", param)


def settings_for(dag: Any) -> ResumeSettings:
    """The resume settings of a DAG; raises :class:`ResumeConfigError` when the param is invalid."""
    return parse_settings(raw_param_value(dag), dag_id=dag.dag_id)

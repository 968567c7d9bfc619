"""
Changed inputs: a resume that overrides run-level params and top-level conf keys of the failed run.

The resumed run's run-level params are the failed run's with the overrides applied, validated together
against the DAG's current params as a trigger's are. Only run-level params (the DAG's) may change;
a task's own params may not. Changing inputs is allowed only when Airflow lets a run's conf set its
params (``[core] dag_run_conf_overrides_params``): the overrides reach the tasks through the run's conf.
What changed is described param by param, with the values of names Airflow's secrets masker treats as
sensitive masked; values are never logged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from airflow_resume_provider import conf
from airflow_resume_provider.display import masked, shortened
from airflow_resume_provider.exceptions import InputChangesDisabledError, InputsInvalidError
from airflow_resume_provider.models import InputChange
from airflow_resume_provider.persisted import CONF_KEY, PARAM_NAME

#: What a masked value shows.
MASK = "***"
#: Names that can never be changed: the provider's own param and conf key.
_RESERVED = (PARAM_NAME, CONF_KEY)
#: How long one value is in a run's note.
NOTE_VALUE_CHARS = 60
#: How long a run's note may be (Airflow stores up to 1000 characters).
NOTE_CHARS = 1000


class InputOverrides(BaseModel):
    """The inputs a resume request changes: run-level params, and top-level keys of the run's conf."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    params: dict[str, Any] = Field(default_factory=dict)
    conf: dict[str, Any] = Field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.params or self.conf)

    def requested(self) -> dict[str, Any]:
        """Every top-level conf key the resumed run gets from the request (params win over conf)."""
        return {**self.conf, **self.params}


@dataclass(frozen=True)
class MergedInputs:
    """The resumed run's inputs: its run-level params and conf, and what changed (values masked)."""

    params: dict[str, Any]
    conf: dict[str, Any]
    changes: list[InputChange] = field(default_factory=list)


def is_sensitive(name: str) -> bool:
    """Whether Airflow's secrets masker hides the values of ``name`` (``password``, ``api_key``...)."""
    from airflow._shared.secrets_masker import should_hide_value_for_key

    return bool(should_hide_value_for_key(name))


def shown(name: str, value: Any) -> Any:
    """``value`` as people may see it: masked whole under a sensitive name, else Airflow's masker's."""
    if is_sensitive(name):
        return MASK
    return masked(value, name)


def check_allowed() -> None:
    """:raises InputChangesDisabledError: ``[core] dag_run_conf_overrides_params`` is off."""
    if not conf.run_conf_overrides_params():
        raise InputChangesDisabledError(
            "Changing inputs is disabled on this deployment: [core] dag_run_conf_overrides_params is off, so "
            "a run's conf cannot set its params. Resume without params or conf, or turn the option on."
        )


def _task_with_own_param(dag: Any, name: str) -> str | None:
    """The first task that has ``name`` as its own task-level param, or None."""
    from airflow_resume_provider.compat import param_is_the_tasks_own

    for task in getattr(dag, "tasks", []):
        task_params = getattr(task, "params", None)
        if task_params is not None and name in task_params and param_is_the_tasks_own(task, name):
            return str(task.task_id)
    return None


def check_names(dag: Any, overrides: InputOverrides) -> None:
    """
    Every name the request changes must be one it may change: a run-level param of the DAG (for
    ``params``), any top-level key but the provider's own (for ``conf``); never a task-level param.

    :raises InputsInvalidError: naming the first name refused and why.
    """
    where = f"DAG {dag.dag_id!r}"
    for source, values in (("params", overrides.params), ("conf", overrides.conf)):
        for name in values:
            if name in _RESERVED:
                raise InputsInvalidError(
                    f"{where}: {name!r} cannot be changed by a resume: it is the provider's own "
                    f"{'param' if name == PARAM_NAME else 'conf key'}.",
                    name,
                )
            if name in dag.params:
                continue
            task_id = _task_with_own_param(dag, name)
            if task_id is not None:
                raise InputsInvalidError(
                    f"{where}: {name!r} is a task-level param of task {task_id!r}; only run-level params "
                    "(the DAG's) can be changed by a resume.",
                    name,
                )
            if source == "params":
                known = ", ".join(repr(k) for k in dag.params if k not in _RESERVED) or "none"
                raise InputsInvalidError(
                    f"{where} has no param {name!r} (its run-level params: {known}).", name
                )
    for name in set(overrides.params) & set(overrides.conf):
        if overrides.params[name] != overrides.conf[name]:
            raise InputsInvalidError(
                f"{where}: {name!r} is given in both params and conf, with different values; give it once.",
                name,
            )


def _error_text(err: BaseException) -> str:
    message = getattr(err, "message", None) or str(err)
    lines = str(message).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def validate(dag: Any, values: dict[str, Any]) -> None:
    """
    Validate the DAG's current params with ``values`` applied, as a trigger with that conf is validated.

    :raises InputsInvalidError: naming the first param refused and why.
    """
    from airflow_resume_provider.compat import param_problems

    problems = param_problems(dag.params, values)
    if problems:
        name, why = problems[0]
        if is_sensitive(name):  # a schema's message quotes the value
            value = values.get(name)
            for text in {repr(value), json.dumps(value, default=str), str(value)}:
                why = why.replace(text, MASK)
        raise InputsInvalidError(
            f"DAG {dag.dag_id!r}: param {name!r} refuses {shortened(json.dumps(shown(name, values.get(name)), default=str), 100)}: "
            f"{why}",
            name,
        )


def merge(
    dag: Any, recorded: dict[str, Any], original_conf: dict[str, Any], overrides: InputOverrides
) -> MergedInputs:
    """
    The resumed run's inputs: the failed run's run-level params (``recorded``) and conf with the
    overrides applied, validated against the DAG's current params.

    :raises InputChangesDisabledError: changing inputs is disabled.
    :raises InputsInvalidError: a name or a value is refused.
    """
    check_allowed()
    check_names(dag, overrides)
    run_params = {k: v for k, v in recorded.items() if k not in _RESERVED}
    new_conf = {k: v for k, v in original_conf.items() if k != CONF_KEY}
    new_conf.update(overrides.requested())
    # Airflow overlays the whole conf on the params (dag_run_conf_overrides_params).
    params = {**run_params, **{k: v for k, v in new_conf.items() if k not in _RESERVED}}
    validate(dag, {**{k: v for k, v in run_params.items() if k in dag.params}, **new_conf})
    return MergedInputs(params=params, conf=new_conf, changes=describe(run_params, original_conf, overrides))


def describe(
    recorded: dict[str, Any], original_conf: dict[str, Any], overrides: InputOverrides
) -> list[InputChange]:
    """What the overrides change, name by name (a value set to what it was is no change), masked."""
    changes = []
    for source, values in (("params", overrides.params), ("conf", overrides.conf)):
        for name, value in values.items():
            if source == "conf" and name in overrides.params:
                continue  # given as a param too (with the same value)
            before = original_conf[name] if name in original_conf else recorded.get(name)
            if before == value and (name in original_conf or name in recorded):
                continue
            changes.append(
                InputChange.model_validate(
                    {"param": name, "from": shown(name, before), "to": shown(name, value), "source": source}
                )
            )
    return changes


def _note_value(value: Any) -> str:
    if value == MASK:
        return MASK
    return shortened(json.dumps(value, default=str, ensure_ascii=False), NOTE_VALUE_CHARS)


def note_text(base: str, changes: list[InputChange]) -> str:
    """The run's note: ``base``, and which params changed (``threshold 10 -> 3``), values masked."""
    if not changes:
        return base
    parts = [f"{c.param} {_note_value(c.from_)} -> {_note_value(c.to)}" for c in changes]
    return shortened(f"{base}; params changed: {', '.join(parts)}", NOTE_CHARS - 40)


def same_as(
    existing_conf: Any, overrides: InputOverrides, existing_params: dict[str, Any] | None = None
) -> bool:
    """
    Whether a run created earlier has the inputs the request asks for: each conf override in its conf,
    each param override in its conf or its recorded params (a value asked for that it had anyway).
    """
    run_conf = existing_conf if isinstance(existing_conf, dict) else {}
    params = existing_params or {}

    def has(name: str, value: Any, in_params: bool) -> bool:
        if name in run_conf:
            return bool(run_conf[name] == value)
        return in_params and name in params and params[name] == value

    return all(has(k, v, False) for k, v in overrides.conf.items()) and all(
        has(k, v, True) for k, v in overrides.params.items()
    )


def shown_params(dag: Any, params: dict[str, Any]) -> dict[str, Any]:
    """The run-level params of the DAG among ``params``, as people may see them."""
    return {k: shown(k, v) for k, v in params.items() if k in dag.params and k not in _RESERVED}


def parse_param(text: str) -> tuple[str, Any]:
    """
    ``NAME=VALUE`` of the CLI's ``--param``: VALUE as JSON (``3``, ``true``, ``[1, 2]``,
    ``"x"``), else as a string.

    :raises ValueError: no ``=``, or an empty name.
    """
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise ValueError(f"--param {text!r}: give NAME=VALUE (VALUE as JSON, else a string).")
    try:
        return name, json.loads(raw)
    except ValueError:
        return name, raw


@dataclass(frozen=True)
class ParamField:
    """One run-level param on the Resume page's "Change inputs" form, its field chosen by its schema."""

    name: str
    #: ``string``, ``integer``, ``number``, ``boolean``, ``enum`` (a select) or ``json`` (objects, arrays).
    kind: str
    #: The failed run's value as JSON (masked for a sensitive name): what the field starts from.
    original: str
    #: What the field shows at first: a string as it is, any other value as JSON; empty when sensitive.
    text: str = ""
    description: str | None = None
    #: For ``enum``: each choice as ``(JSON, label)``.
    choices: list[tuple[str, str]] = field(default_factory=list)
    sensitive: bool = False


def _kind(schema: dict[str, Any], value: Any) -> str:
    if schema.get("enum"):
        return "enum"
    kinds = schema.get("type")
    if isinstance(kinds, list):
        kinds = next((k for k in kinds if k != "null"), None)
    if kinds in ("string", "integer", "number", "boolean"):
        return str(kinds)
    if kinds in ("object", "array") or isinstance(value, dict | list):
        return "json"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "string"


def fields(dag: Any, original: dict[str, Any] | None) -> list[ParamField]:
    """The form fields of the DAG's run-level params, starting from the failed run's values."""
    found = []
    values = original or {}
    for name in dag.params:
        if name in _RESERVED:
            continue
        param = dag.params.get_param(name)
        schema = dict(getattr(param, "schema", None) or {})
        value = values.get(name, dag.params[name])
        sensitive = is_sensitive(name)
        visible = shown(name, value)
        found.append(
            ParamField(
                name=str(name),
                kind=_kind(schema, value),
                original=json.dumps(visible, default=str, ensure_ascii=False),
                text=""
                if sensitive
                else (
                    visible
                    if isinstance(visible, str)
                    else json.dumps(visible, default=str, ensure_ascii=False)
                ),
                description=getattr(param, "description", None) or schema.get("description"),
                choices=[
                    (
                        json.dumps(c, default=str, ensure_ascii=False),
                        c if isinstance(c, str) else json.dumps(c),
                    )
                    for c in schema.get("enum") or []
                ],
                sensitive=sensitive,
            )
        )
    return found

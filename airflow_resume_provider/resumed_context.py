"""
The task wrapper's logic: a resumed run's tasks see the original run's context, exactly.

A resumed run cannot carry the original ``logical_date`` (``(dag_id, logical_date)`` is unique), so
it is created with ``logical_date=None`` and the original values in ``conf["__resume__"]``, signed by
the provider. Before a task renders its templates, :func:`apply` verifies that record, puts the
original ``logical_date``, ``ds``, ``ts``, ``data_interval_*`` and ``params`` back into its context and
removes the bookkeeping from ``dag_run.conf`` and ``params``, so tasks read exactly what the original
run's tasks read. A ``__resume__`` entry the provider did not sign is ignored (and said so in the log).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from airflow_resume_provider import run_record
from airflow_resume_provider.exceptions import ResumedContextError
from airflow_resume_provider.persisted import CONF_KEY, PARAM_NAME

if TYPE_CHECKING:
    from airflow_resume_provider.run_record import RunRecord

log = logging.getLogger(__name__)

# The verified record taken out of the run's conf in this task process, for the capture's lineage.
_records: dict[tuple[str, str], RunRecord] = {}


# The resumed run's own logical date (as Airflow stores the run: None), before the original one was
# presented in its place; listeners see this one (``lineage.py``).
_own_logical_dates: dict[tuple[str, str], Any] = {}


def record_for(dag_id: str, run_id: str) -> RunRecord | None:
    return _records.get((dag_id, run_id))


def own_logical_date(dag_id: str, run_id: str) -> tuple[bool, Any]:
    """``(True, the run's own logical date)`` when this process presented another one to its tasks."""
    key = (dag_id, run_id)
    return (key in _own_logical_dates, _own_logical_dates.get(key))


def _parse(value: Any) -> Any:
    if not value:
        return None
    import pendulum

    return pendulum.parse(value)


def apply(context: dict[str, Any]) -> None:
    """
    Present the original run's context in a resumed run; a no-op for any other run.

    :raises ResumedContextError: the run looks resumed but its record cannot be verified here, or the
        original context cannot be applied; the task must then not run with other inputs.
    """
    dag_run = context.get("dag_run")
    conf = getattr(dag_run, "conf", None) or {}
    if dag_run is None or not isinstance(conf, dict) or CONF_KEY not in conf:
        return
    ti = context.get("ti")
    dag_id, run_id = str(getattr(ti, "dag_id", "")), str(getattr(ti, "run_id", ""))
    checked = run_record.check_quietly(dag_id, run_id, conf)
    if checked.record is None:
        if run_record.looks_resumed(run_id):
            raise ResumedContextError(
                f"Run {run_id!r} of DAG {dag_id!r} looks like a resumed run, but its {CONF_KEY!r} record cannot "
                f"be verified on this worker ({checked.ignored}) so the original run's context cannot be "
                "presented. The task does not run with other inputs. Make [api_auth] jwt_secret (or [resume] "
                "signing_key) the same on every Airflow component, then clear the task."
            )
        log.warning("%s", checked.ignored)
        return
    own_logical_date = getattr(dag_run, "logical_date", None)
    try:
        _present(context, dag_run, conf, checked.record)
    except Exception as err:
        raise ResumedContextError(
            f"The original context of run {checked.record.parent_run_id!r} could not be presented to task "
            f"{getattr(ti, 'task_id', '?')!r} of the resumed run {run_id!r}: {type(err).__name__}: {err}. The task "
            "does not run with other inputs."
        ) from err
    _records[(dag_id, run_id)] = checked.record
    _own_logical_dates.setdefault((dag_id, run_id), own_logical_date)


def _present(context: dict[str, Any], dag_run: Any, conf: dict[str, Any], record: RunRecord) -> None:
    logical_date = _parse(record.logical_date)
    interval_start = _parse(record.data_interval_start)
    interval_end = _parse(record.data_interval_end)

    # Change the run object the task runner builds every context from, so a later
    # get_template_context() call yields the same values.
    dag_run.conf = {k: v for k, v in conf.items() if k != CONF_KEY}
    if logical_date is not None:
        dag_run.logical_date = logical_date
        dag_run.data_interval_start = interval_start
        dag_run.data_interval_end = interval_end
        ds = logical_date.strftime("%Y-%m-%d")
        ts = logical_date.isoformat()
        context.update(
            logical_date=logical_date,
            ds=ds,
            ds_nodash=ds.replace("-", ""),
            ts=ts,
            ts_nodash=logical_date.strftime("%Y%m%dT%H%M%S"),
            ts_nodash_with_tz=ts.replace("-", "").replace(":", ""),
            data_interval_start=interval_start,
            data_interval_end=interval_end,
        )
    _restore_params(context.get("params"), record.params, context.get("task"), dag_run.conf)


def _restore_params(params: Any, recorded: dict[str, Any], task: Any, run_conf: dict[str, Any]) -> None:
    """
    Put the original run's params back. ``recorded`` are the run's params as the DAG defined them; a
    task's own task-level params and the run's conf (the same as the original's) are left as Airflow
    resolved them, as they were in the original run. The verdict checked today's schema accepts them.
    """
    if params is None:
        return
    if CONF_KEY in params:
        del params[CONF_KEY]
    for key, value in recorded.items():
        if key in (CONF_KEY, PARAM_NAME) or key in run_conf or is_task_level_param(task, key):
            continue
        params[key] = value


def is_task_level_param(task: Any, key: str) -> bool:
    """Whether ``key`` is one of the task's own params (``@task(params=...)``), not the DAG's."""
    from airflow_resume_provider.compat import param_is_the_tasks_own

    task_params = getattr(task, "params", None)
    if task_params is None or key not in task_params:
        return False
    return param_is_the_tasks_own(task, key)


def wrap_render_template_fields(task: Any) -> None:
    """Make ``task`` apply the resumed context just before its templates are rendered."""
    # Call the class's function on context["task"]: the task runner renders a copy of the operator
    # (prepare_for_execution), and a bound method would render this parse-time instance instead.
    render = type(task).render_template_fields

    def render_template_fields(context: Any, jinja_env: Any = None) -> Any:
        apply(context)  # raises when a resumed run's task would otherwise run with other inputs
        rendered = render(context["task"], context, jinja_env)
        ti = context.get("ti")
        record = record_for(str(getattr(ti, "dag_id", "")), str(getattr(ti, "run_id", "")))
        if record is not None and record.attach:
            from airflow_resume_provider.attach import prepare

            # After rendering: a mapped step's operator for this map index exists only now.
            prepare(context, record)
        return rendered

    task.render_template_fields = render_template_fields

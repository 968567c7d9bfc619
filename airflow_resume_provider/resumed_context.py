"""
The task wrapper's logic: a resumed run's tasks see the original run's context, exactly.

A resumed run cannot carry the original ``logical_date`` (``(dag_id, logical_date)`` is unique), so
it is created with ``logical_date=None`` and the original values in ``conf["__resume__"]``. Before a
task renders its templates, :func:`apply` puts the original ``logical_date``, ``ds``, ``ts``,
``data_interval_*`` and ``params`` back into its context and removes the bookkeeping from
``dag_run.conf`` and ``params``, so tasks read exactly what the original run's tasks read.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow_resume_provider.bookkeeping import CONF_KEY

log = logging.getLogger(__name__)

# The marker taken out of the run's conf in this task process, for the capture's lineage record.
_markers: dict[tuple[str, str], dict[str, Any]] = {}


def marker_for(dag_id: str, run_id: str) -> dict[str, Any] | None:
    return _markers.get((dag_id, run_id))


def _parse(value: Any) -> Any:
    if not value:
        return None
    import pendulum

    return pendulum.parse(value)


def apply(context: dict[str, Any]) -> None:
    """Present the original run's context in a resumed run; a no-op for any other run."""
    dag_run = context.get("dag_run")
    conf = getattr(dag_run, "conf", None) or {}
    marker = conf.get(CONF_KEY)
    if dag_run is None or not isinstance(marker, dict):
        return
    ti = context.get("ti")
    _markers[(getattr(ti, "dag_id", ""), getattr(ti, "run_id", ""))] = marker
    clean_conf = {k: v for k, v in conf.items() if k != CONF_KEY}
    logical_date = _parse(marker.get("logical_date"))
    interval_start = _parse(marker.get("data_interval_start"))
    interval_end = _parse(marker.get("data_interval_end"))

    # Change the run object the task runner builds every context from, so a later
    # get_template_context() call yields the same values.
    dag_run.conf = clean_conf
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
    _restore_params(context.get("params"), marker.get("params"))


def _restore_params(params: Any, recorded: Any) -> None:
    if params is None:
        return
    if CONF_KEY in params:
        del params[CONF_KEY]
    if not isinstance(recorded, dict):
        return
    for key, value in recorded.items():
        if key == CONF_KEY:
            continue
        try:
            params[key] = value
        except Exception:  # a param whose schema changed since: keep today's value, say so
            log.warning(
                "Param %r of the original run could not be restored (%r); kept the current value.", key, value
            )


def wrap_render_template_fields(task: Any) -> None:
    """Make ``task`` apply the resumed context just before its templates are rendered."""
    # Call the class's function on context["task"]: the task runner renders a copy of the operator
    # (prepare_for_execution), and a bound method would render this parse-time instance instead.
    render = type(task).render_template_fields

    def render_template_fields(context: Any, jinja_env: Any = None) -> Any:
        try:
            apply(context)
        except Exception:
            log.warning("Could not present the original run's context; no impact on the run.", exc_info=True)
        return render(context["task"], context, jinja_env)

    task.render_template_fields = render_template_fields

"""
What a resumed run tells lineage tools (the OpenLineage provider).

- :func:`resume_run_facets` is the ``[openlineage] custom_run_facets`` function (a public import path:
  ``airflow_resume_provider.lineage.resume_run_facets``). The OpenLineage events of every task that runs
  in a resumed run carry the run facet ``airflowResume``: the failed run it resumed (with this task's
  OpenLineage run id there, computed as the OpenLineage provider computes it), the root run, the resume
  count, the resume point, the tasks restored and not run, the kind and the changed inputs. Events of
  other runs get nothing. It reads only the signed run record and the DAG the task runs with, and never
  raises.
- :class:`ResumedRunIdentity` is a listener (registered when the OpenLineage provider is installed and
  enabled) that gives a resumed run's task events identities of their own. A resumed run's tasks see the original run's logical date (``resumed_context.py``), on the very run
  object the task runner hands to listeners too; the OpenLineage provider derives a task's run id and
  its parent (the DAG run) from that date, so the events of the resumed run would reuse the failed
  run's ids. While the task's listener hooks run, the run object shows the resumed run's own logical
  date (None, as Airflow stores the run, so the OpenLineage provider uses its ``run_after``, as it does
  for the resumed run's DAG events); the original is back before the task's code runs.

Nothing here imports the OpenLineage provider at module level: without it installed nothing changes.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow.listeners import hookimpl

from airflow_resume_provider import run_record
from airflow_resume_provider.guard import TASK, guarded, never_raises
from airflow_resume_provider.persisted import OPENLINEAGE_FACET

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_resume_provider.run_record import RunRecord


@never_raises("The airflowResume OpenLineage facet", TASK)
def resume_run_facets(task_instance: Any, ti_state: Any) -> dict[str, Any]:
    """
    ``[openlineage] custom_run_facets`` function: ``{"airflowResume": <facet>}`` for a task of a run the
    provider resumed (its signed record verified), ``{}`` for any other.
    """
    record = _record_of(task_instance)
    if record is None:
        return {}
    return {OPENLINEAGE_FACET: _facet_class()(**facet_fields(task_instance, record))}


def facet_fields(task_instance: Any, record: RunRecord) -> dict[str, Any]:
    """The facet's fields for a task instance of the resumed run that ``record`` describes."""
    dag_id = str(task_instance.dag_id)
    map_index = -1 if task_instance.map_index is None else int(task_instance.map_index)
    failed_run: dict[str, Any] = {"dagId": dag_id, "dagRunId": record.parent_run_id}
    failed_run.update(_failed_run_openlineage_ids(dag_id, str(task_instance.task_id), map_index, record))
    fields: dict[str, Any] = {
        "failedRun": failed_run,
        "rootRun": {"dagId": dag_id, "dagRunId": record.root_run_id},
        "resumeCount": record.resume_count,
        "resumePoint": record.resumed_at_task_id,
        "restoredTasks": _restored_tasks(task_instance, record.resumed_at_task_id),
        "kind": record.kind,
    }
    changes = getattr(record, "changes", None) or []
    if changes:
        fields["changedInputs"] = [_plain(change) for change in changes]
    return fields


def _record_of(task_instance: Any) -> RunRecord | None:
    """The resumed run's signed record: as the task wrapper verified it (task process), else from the
    run's conf (scheduler, API server: one read of the run row). None for any other run."""
    from airflow_resume_provider.resumed_context import record_for

    dag_id, run_id = str(task_instance.dag_id), str(task_instance.run_id)
    record = record_for(dag_id, run_id)
    if record is not None or not run_record.looks_resumed(run_id):
        return record
    from airflow_resume_provider import capture

    if capture.is_task_runner_instance(task_instance):
        return None  # the task wrapper did not verify a record for this run: not one of the provider's
    dag_run = getattr(task_instance, "dag_run", None)
    return run_record.check_quietly(dag_id, run_id, getattr(dag_run, "conf", None)).record


def _failed_run_openlineage_ids(
    dag_id: str, task_id: str, map_index: int, record: RunRecord
) -> dict[str, str]:
    """The failed run's OpenLineage run ids (its DAG run's, and this task's when it ran there), derived as
    the OpenLineage provider derives them: from the run's logical date (else its run_after), the DAG run's
    clear number, and the task's try."""
    parent = record.parent_lineage
    when = None if parent is None else (parent.logical_date or parent.run_after)
    if parent is None or when is None:
        return {}
    from airflow.providers.openlineage.plugins.adapter import OpenLineageAdapter

    date = datetime.fromisoformat(when)
    ids = {
        "openlineageDagRunId": OpenLineageAdapter.build_dag_run_id(
            dag_id=dag_id, logical_date=date, clear_number=parent.clear_number
        )
    }
    for tried_task, tried_index, try_number in parent.tries:
        if tried_task == task_id and tried_index == map_index:
            ids["openlineageRunId"] = OpenLineageAdapter.build_task_instance_run_id(
                dag_id=dag_id, task_id=task_id, try_number=try_number, logical_date=date, map_index=map_index
            )
    return ids


def _restored_tasks(task_instance: Any, resume_point: str | None) -> list[str]:
    """The tasks before the resume point in the DAG's chain: restored in the resumed run, not run."""
    dag = getattr(getattr(task_instance, "task", None), "dag", None)
    if dag is None or resume_point is None:
        return []
    from airflow_resume_provider.structure import linear_order

    order = [shape.task_id for shape in linear_order(dag)]
    return order[: order.index(resume_point)] if resume_point in order else []


def _plain(change: Any) -> Any:
    if isinstance(change, Mapping):
        return dict(change)
    dump = getattr(change, "model_dump", None)
    return dump(mode="json", by_alias=True) if callable(dump) else change


@functools.cache
def _facet_class() -> type:
    """The facet's class, built on first use: only a process with the OpenLineage provider asks."""
    from attrs import define
    from openlineage.client.facet_v2 import RunFacet

    @define
    class AirflowResumeRunFacet(RunFacet):
        """
        The run was created by airflow-resume-provider to resume a failed run at ``resumePoint``; the tasks
        before it (``restoredTasks``) were restored from the failed run's recorded state, not run.
        """

        failedRun: dict[str, Any]  # OpenLineage names fields in camelCase
        rootRun: dict[str, Any]
        resumeCount: int
        resumePoint: str | None
        restoredTasks: list[str]
        kind: str
        changedInputs: list[Any] | None = None

    return AirflowResumeRunFacet


# --- the resumed run's own identity for listeners ------------------------------------------------------


@contextmanager
def _own_identity(task_instance: Any) -> Iterator[None]:
    """While the block runs, the run object of a resumed run's task shows the run's own logical date."""
    shown: tuple[Any, Any] | None = None
    with guarded("Showing listeners the resumed run's own logical date"):
        from airflow_resume_provider import capture
        from airflow_resume_provider.resumed_context import own_logical_date

        found, own = own_logical_date(str(task_instance.dag_id), str(task_instance.run_id))
        if found and capture.is_task_runner_instance(task_instance):
            dag_run = task_instance.get_template_context()["dag_run"]
            shown = (dag_run, dag_run.logical_date)
            dag_run.logical_date = own
    try:
        yield
    finally:
        if shown is not None:
            with guarded("Presenting the original logical date again"):
                shown[0].logical_date = shown[1]
                # The context's keys derived from the logical date are built from the run object again.
                task_instance.get_template_context()


class ResumedRunIdentity:
    """
    Listener that wraps every other listener's task hooks (a pluggy wrapper): in a resumed run's task
    process they see the run's own logical date instead of the original one presented to the task.
    """

    @hookimpl(wrapper=True)
    def on_task_instance_running(self, previous_state: Any, task_instance: Any) -> Any:
        with _own_identity(task_instance):
            return (yield)

    @hookimpl(wrapper=True)
    def on_task_instance_success(self, previous_state: Any, task_instance: Any) -> Any:
        with _own_identity(task_instance):
            return (yield)

    @hookimpl(wrapper=True)
    def on_task_instance_failed(self, previous_state: Any, task_instance: Any, error: Any) -> Any:
        with _own_identity(task_instance):
            return (yield)


def listeners() -> list[Any]:
    """The plugin's listeners for lineage: the identity wrapper when the OpenLineage provider is installed
    and enabled (otherwise no listener sees anything different)."""
    try:
        from airflow.providers.openlineage import conf as openlineage_conf
    except ImportError:
        return []
    enabled = True
    with guarded("Reading whether OpenLineage is enabled", "this component"):
        enabled = not openlineage_conf.is_disabled()
    return [ResumedRunIdentity()] if enabled else []

"""
The trigger step of a resumed run that waits for a resumed child run instead of triggering a new one.

When a run is resumed at a ``TriggerDagRunOperator`` step whose child run failed, the child run is
resumed too (``tree_resume.py``) and the new run's signed record names it for the step
(``RunRecord.attach``). In the task process, once the resumed context is applied (``resumed_context``),
:func:`prepare` gives the operator about to execute an ``execute`` that, instead of triggering a run,
pushes ``trigger_run_id`` (the resumed child run) and waits for that run as the operator is configured:
``wait_for_completion``, ``poke_interval``, ``deferrable`` (the operator's own trigger and
``execute_complete``), ``allowed_states`` and ``failed_states``. The step succeeds or fails with it.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from airflow_resume_provider.tree import TRIGGER_RUN_ID_KEY

if TYPE_CHECKING:
    from airflow_resume_provider.run_record import ChildAttachment, RunRecord

log = logging.getLogger(__name__)


def prepare(context: dict[str, Any], record: RunRecord) -> None:
    """Make the task about to execute wait for its resumed child run, when the record says it does."""
    if not record.attach:
        return
    task = context.get("task")
    ti = context.get("ti")
    map_index = getattr(ti, "map_index", -1)
    target = record.attachment(str(getattr(task, "task_id", "")), -1 if map_index is None else int(map_index))
    if task is None or target is None:
        return

    def execute(context: Any) -> None:
        wait_for_child(context["task"], context, target)

    # The task runner calls ``ti.task.execute``: the operator just rendered is that task.
    task.execute = execute


def wait_for_child(task: Any, context: Any, target: ChildAttachment) -> None:
    """Stand in for the operator's ``execute``: attach to the resumed child run and wait as configured."""
    from airflow.sdk.exceptions import AirflowException

    ti = context["ti"]
    log.info(
        "Step %s waits for the resumed child run %s of DAG %s instead of triggering a new run.",
        target.task_id,
        target.run_id,
        target.dag_id,
    )
    task.trigger_run_id = target.run_id
    ti.xcom_push(key=TRIGGER_RUN_ID_KEY, value=target.run_id)
    if not getattr(task, "wait_for_completion", False):
        return
    allowed = [_state_name(s) for s in getattr(task, "allowed_states", None) or ["success"]]
    failed = [_state_name(s) for s in getattr(task, "failed_states", None) or ["failed"]]
    poke_interval = float(getattr(task, "poke_interval", 60) or 0)
    if getattr(task, "deferrable", False):
        from airflow.providers.standard.triggers.external_task import DagStateTrigger

        # The operator's own ``execute_complete`` judges the event, as after its own deferral.
        task.defer(
            trigger=DagStateTrigger(
                dag_id=target.dag_id,
                # The operator's own states (DagRunState values), as its own deferral passes them.
                states=[*task.allowed_states, *task.failed_states],
                execution_dates=None,
                run_ids=[target.run_id],
                poll_interval=poke_interval,
            ),
            method_name="execute_complete",
        )
    while True:
        state = _state_name(ti.get_dagrun_state(dag_id=target.dag_id, run_id=target.run_id))
        if state in failed:
            raise AirflowException(
                f"{target.dag_id} failed with failed state {state} (the resumed child run {target.run_id})"
            )
        if state in allowed:
            log.info("The resumed child run %s of DAG %s finished: %s", target.run_id, target.dag_id, state)
            return
        log.info(
            "Waiting for the resumed child run %s of DAG %s (%s)...", target.run_id, target.dag_id, state
        )
        time.sleep(poke_interval)


def _state_name(state: Any) -> str:
    """A run state as its name (``"success"``), whichever enum (core, Task SDK) or string carries it."""
    return str(getattr(state, "value", state))

"""Helpers shared by the integration tests: parse the test DAG folder, run DAGs, read state files."""

from __future__ import annotations

import itertools
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])


def get_dag(dag_id: str):
    bag = dagbag()
    assert dag_id in bag.dags, f"{dag_id} not parsed; import errors: {bag.import_errors}"
    return bag.dags[dag_id]


_dates = itertools.count(1)


def unique_logical_date():
    """A logical date no other run of this session uses ((dag_id, logical_date) is unique)."""
    import pendulum

    return pendulum.datetime(2026, 6, 1, tz="UTC").add(days=next(_dates))


def run_dag(dag_id: str, **kwargs: Any):
    """Run a DAG with ``dag.test()`` on the test metadata DB; returns the finished DagRun."""
    kwargs.setdefault("logical_date", None)
    return get_dag(dag_id).test(**kwargs)


def log_folder() -> Path:
    return Path(os.environ["AIRFLOW__LOGGING__BASE_LOG_FOLDER"])


def state_file(dag_id: str, run_id: str, task_id: str, attempt: int = 1) -> Path:
    return (
        log_folder()
        / f"dag_id={dag_id}"
        / f"run_id={run_id}"
        / f"task_id={task_id}"
        / f"attempt={attempt}.resume.json"
    )


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def xcom_value(dag_id: str, run_id: str, task_id: str, key: str = "return_value"):
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.scalar(
            XComModel.get_many(run_id=run_id, key=key, task_ids=task_id, dag_ids=dag_id).with_only_columns(
                XComModel.value
            )
        )
    return row


def ti_states(dag_id: str, run_id: str) -> dict[str, tuple[str | None, int]]:
    """task_id -> (state, try_number) for one run."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(TaskInstance.task_id, TaskInstance.state, TaskInstance.try_number).where(
                TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id
            )
        ).all()
    return {task_id: (state, try_number) for task_id, state, try_number in rows}


def run_existing_run(dag_id: str, run_id: str, *, follow_deferred: bool = False):
    """
    Run the tasks of an existing (e.g. resumed) run in-process, the way ``dag.test()`` runs its own.

    The scheduler's part is played by ``DagRun.update_state``; each schedulable task runs through the
    same in-process task runner as ``dag.test()``, with listeners and policies active. With
    ``follow_deferred``, a deferred task is finished as the triggerer would (:func:`run_tree`).
    Returns the run's state.
    """
    from airflow.models.dagbag import DBDagBag
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.sdk.definitions.dag import _run_task
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState, TaskInstanceState
    from sqlalchemy import select

    dag = get_dag(dag_id)
    with create_session() as session:
        dr = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
        dr.dag = DBDagBag().get_dag_for_run(dr, session=session)
        dr.state = DagRunState.RUNNING
        dr.start_date = datetime.now(timezone.utc)
        session.commit()
        for _ in range(100):
            if dr.state != DagRunState.RUNNING:
                break
            session.expire_all()
            schedulable, _ = dr.update_state(session=session)
            for ti in schedulable:
                ti.try_number += 1
                ti.state = TaskInstanceState.SCHEDULED
            session.commit()
            for ti in [
                t for t in dr.get_task_instances(session=session) if t.state == TaskInstanceState.SCHEDULED
            ]:
                ti_id = ti.id
                _run_task(ti=ti, task=dag.task_dict[ti.task_id])
                if follow_deferred:
                    session.expire_all()
                    if session.get(TaskInstance, ti_id).state == TaskInstanceState.DEFERRED:
                        _finish_deferred(session, dag, ti_id)
    with create_session() as session:
        return session.scalar(select(DagRun.state).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))


def sync_dags() -> None:
    """Serialize every DAG of the test DAG folder into the metadata DB (as ``dag.test()`` does for one)."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
    from airflow.utils.session import create_session

    manager = DagBundlesManager()
    with create_session() as session:
        manager.sync_bundles_to_db(session=session)
    for bundle in manager.get_all_dag_bundles():
        if not bundle.is_initialized:
            bundle.initialize()
        bag = BundleDagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name=bundle.name)
        sync_bag_to_db(bag, bundle.name, bundle.version)


def trigger(dag_id: str, run_id: str, conf: dict[str, Any] | None = None) -> str:
    """Create a queued manual run (nothing runs it: :func:`run_tree` does)."""
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.utils.types import DagRunTriggeredByType

    trigger_dag(dag_id, run_id=run_id, conf=conf or {}, triggered_by=DagRunTriggeredByType.TEST)
    return run_id


def run_tree(dag_id: str, run_id: str) -> str:
    """
    Run an existing run in-process like :func:`run_existing_run`, and the child runs its trigger steps
    trigger: a deferred trigger step's child run is run to its end (recursively), then the step's
    trigger is run inline and the step resumes, as the triggerer would have it. Returns the run's state.
    """
    return run_existing_run(dag_id, run_id, follow_deferred=True)


def _finish_deferred(session: Any, dag: Any, ti_id: Any) -> None:
    """Run a deferred task's child runs (a trigger step's), then its trigger inline, then the task again."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import Trigger
    from airflow.sdk._shared.module_loading import import_string
    from airflow.sdk.api.datamodels._generated import TaskInstance as TaskInstanceSDK
    from airflow.sdk.definitions.dag import _run_inline_trigger, _run_task
    from airflow.sdk.serde import serialize
    from airflow.utils.state import DagRunState, TaskInstanceState
    from sqlalchemy import select

    row = session.get(TaskInstance, ti_id)
    found = session.get(Trigger, row.trigger_id)
    classpath, kwargs = found.classpath, found.kwargs
    for child_run_id in kwargs.get("run_ids") or []:
        if session.scalar(
            select(DagRun.state).where(DagRun.dag_id == kwargs["dag_id"], DagRun.run_id == child_run_id)
        ) in (DagRunState.QUEUED, DagRunState.RUNNING):
            run_tree(kwargs["dag_id"], child_run_id)  # closes this (scoped) session
    row = session.get(TaskInstance, ti_id)
    sdk_ti = TaskInstanceSDK(
        id=row.id,
        task_id=row.task_id,
        dag_id=row.dag_id,
        run_id=row.run_id,
        try_number=row.try_number,
        map_index=row.map_index,
        dag_version_id=row.dag_version_id,
    )
    event = _run_inline_trigger(import_string(classpath)(**kwargs), sdk_ti)
    row.next_kwargs = {"event": serialize(event.payload)}
    row.state = TaskInstanceState.SCHEDULED
    row.trigger_id = None
    session.commit()
    row = session.get(TaskInstance, ti_id)
    _run_task(ti=row, task=dag.task_dict[row.task_id])

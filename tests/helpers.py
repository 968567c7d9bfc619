"""Helpers shared by the integration tests: parse the test DAG folder, run DAGs, read state files."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])


def get_dag(dag_id: str):
    bag = dagbag()
    assert dag_id in bag.dags, f"{dag_id} not parsed; import errors: {bag.import_errors}"
    return bag.dags[dag_id]


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

"""Resume enabled on a DAG that branches and joins: must be a DAG import error."""

from __future__ import annotations

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

with DAG("resume_test_nonlinear", schedule=None, params={"resume": True}):
    start = EmptyOperator(task_id="start")
    left = EmptyOperator(task_id="left")
    right = EmptyOperator(task_id="right")
    end = EmptyOperator(task_id="end")
    start >> [left, right] >> end

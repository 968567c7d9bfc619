"""A branching DAG that does not opt in: the provider leaves it alone."""

from __future__ import annotations

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

with DAG("resume_test_not_opted_in", schedule=None):
    start = EmptyOperator(task_id="start")
    start >> [EmptyOperator(task_id="left"), EmptyOperator(task_id="right")]

"""An invalid resume param: must be a DAG import error naming the keys."""

from __future__ import annotations

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

with DAG("resume_test_bad_param", schedule=None, params={"resume": {"retries": -1, "colour": "blue"}}):
    EmptyOperator(task_id="only")

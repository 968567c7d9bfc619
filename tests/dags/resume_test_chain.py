"""
Linear DAGs for the tests.

``resume_test_chain``: five steps mixing TaskFlow and a templated BashOperator. The step named by the
Variable ``resume_test_fail_at`` raises; every step appends its task id to the file named by the
Variable ``resume_test_ledger`` (when set), so tests can count executions.

``resume_test_payload``: ten steps, each returning ``payload_kb`` KB, to measure state growth.
"""

from __future__ import annotations

import pendulum
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, Variable, chain, task


def _note(step: str) -> None:
    ledger = Variable.get("resume_test_ledger", default="")
    if ledger:
        with open(ledger, "a") as fh:
            fh.write(step + "\n")
    if Variable.get("resume_test_fail_at", default="") == step:
        raise ValueError(f"step {step} failed on purpose")


with DAG(
    "resume_test_chain",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"resume": True, "region": "eu"},
):

    @task
    def first(params=None, ti=None):
        _note("first")
        ti.xcom_push(key="batch", value={"id": 7})
        return {"region": params["region"], "values": [1, 2, 3]}

    @task
    def second(data: dict, ds=None):
        _note("second")
        return {**data, "double": [v * 2 for v in data["values"]], "ds": ds}

    stamp = BashOperator(
        task_id="stamp",
        bash_command="echo {{ ds }} {{ ts }} {{ data_interval_start }} {{ params.region }}",
    )

    @task
    def fourth(ds=None, ti=None, dag_run=None, params=None):
        _note("fourth")
        data = ti.xcom_pull(task_ids="second")
        return {
            "sum": sum(data["double"]),
            "batch": ti.xcom_pull(task_ids="first", key="batch"),
            "stamp": ti.xcom_pull(task_ids="stamp"),
            "ds": ds,
            "conf": dict(dag_run.conf or {}),
            "params": dict(params),
        }

    @task
    def fifth(result: dict):
        _note("fifth")
        return result

    result = fourth()
    chain(second(first()), stamp, result)
    fifth(result)


with DAG("resume_test_payload", schedule=None, params={"resume": True, "payload_kb": 10}):
    previous = None
    for i in range(10):

        @task(task_id=f"step_{i:02d}")
        def step(params=None):
            return "x" * (int(params["payload_kb"]) * 1024)

        current = step()
        if previous is not None:
            previous >> current
        previous = current


with DAG("resume_test_long", schedule=None, params={"resume": True}):
    # ``resume_test_long``: 80 steps returning small values, to check that a run's state grows
    # linearly with its length.
    previous = None
    for i in range(80):

        @task(task_id=f"step_{i:02d}")
        def small(index=i):
            return index

        current = small()
        if previous is not None:
            previous >> current
        previous = current

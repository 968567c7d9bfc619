"""
Linear DAGs with mapped steps (``.expand``) for the tests.

``resume_test_mapped``: ``numbers >> square (mapped over numbers' 5 values) >> total >> report``. The
map index of ``square`` named by the Variable ``resume_test_mapped_fail_index`` (default "3") raises
while the Variable ``resume_test_mapped_fail`` is "true" (the default). Every executed step appends
``<task>[<map index>]`` to the file named by the Variable ``resume_test_ledger`` (when set).

``resume_test_mapped_before``: mapped steps before the failing one: ``numbers >> double (mapped with
expand_kwargs) >> echo (a mapped BashOperator over literal values) >> collect``; ``collect`` raises
while ``resume_test_mapped_fail`` is "true" and otherwise returns what the mapped steps produced.
"""

from __future__ import annotations

import pendulum
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, Variable, task


def _note(step: str) -> None:
    ledger = Variable.get("resume_test_ledger", default="")
    if ledger:
        with open(ledger, "a") as fh:
            fh.write(step + "\n")


def _failing() -> bool:
    return Variable.get("resume_test_mapped_fail", default="true").lower() == "true"


with DAG(
    "resume_test_mapped",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"resume": True},
):

    @task
    def numbers():
        _note("numbers")
        return [1, 2, 3, 4, 5]

    @task
    def square(x: int, ti=None):
        _note(f"square[{ti.map_index}]")
        if _failing() and str(ti.map_index) == Variable.get("resume_test_mapped_fail_index", default="3"):
            raise ValueError(f"square failed on purpose at map index {ti.map_index}")
        ti.xcom_push(key="seen", value=f"x={x}")
        return x * x

    @task
    def total(values: list):
        _note("total")
        return {"values": list(values), "sum": sum(values)}

    @task
    def report(result: dict, ti=None):
        _note("report")
        return {**result, "seen": list(ti.xcom_pull(task_ids="square", key="seen"))}

    report(total(square.expand(x=numbers())))


with DAG(
    "resume_test_mapped_before",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"resume": True},
):

    @task
    def numbers():
        _note("numbers")
        return [{"x": 1, "y": 10}, {"x": 2, "y": 20}, {"x": 3, "y": 30}]

    @task
    def double(x: int, y: int, ti=None):
        _note(f"double[{ti.map_index}]")
        return (x + y) * 2

    echo = BashOperator.partial(task_id="echo").expand(bash_command=["echo a", "echo b"])

    @task
    def collect(ti=None):
        _note("collect")
        if _failing():
            raise RuntimeError("collect failed on purpose")
        return {"double": list(ti.xcom_pull(task_ids="double")), "echo": list(ti.xcom_pull(task_ids="echo"))}

    double.expand_kwargs(numbers()) >> echo >> collect()


with DAG(
    "resume_test_mapped_twice",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"resume": True},
):
    # A mapped step over a mapped step's results: numbers >> square[5] >> plus_one[5] >> total.

    @task
    def numbers():
        _note("numbers")
        return [1, 2, 3, 4, 5]

    @task
    def square(x: int, ti=None):
        _note(f"square[{ti.map_index}]")
        return x * x

    @task
    def plus_one(x: int, ti=None):
        _note(f"plus_one[{ti.map_index}]")
        if _failing() and ti.map_index == 2:
            raise ValueError("plus_one failed on purpose at map index 2")
        if x == 16:  # square[3]'s result: this index is skipped, and stays skipped after a resume
            from airflow.sdk.exceptions import AirflowSkipException

            raise AirflowSkipException("nothing to add")
        return x + 1

    @task(trigger_rule="none_failed")
    def total(values: list):
        _note("total")
        return list(values)

    total(plus_one.expand(x=square.expand(x=numbers())))

"""
A parent DAG with automatic retries whose trigger step waits for a child DAG, for the cluster tests
(the tree resumed by an automatic retry while two schedulers run).

``resume_test_cluster_tree_parent`` (``retries: 1``, ``on_retry: true``): ``p_first >> run_child >>
p_last``; ``run_child`` triggers ``resume_test_cluster_tree_child`` and waits for it by polling (the
cluster has no triggerer). ``resume_test_cluster_tree_child`` (resume enabled, no retries of its own):
``c_first >> c_middle >> c_last``; ``c_middle`` fails the first time it runs, so the child run fails,
then the parent's ``run_child``, and the parent's automatic retry resumes the child at ``c_middle``.

Every task appends its name to ``<resume_test_ledger_dir>/<dag_id>.txt`` (when the Variable is set):
``c_middle`` counts its executions there, so it fails on every run while the Variable is unset.
"""

from __future__ import annotations

from pathlib import Path

import pendulum
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG, Variable, task

START = pendulum.datetime(2026, 1, 1, tz="UTC")
PARENT = "resume_test_cluster_tree_parent"
CHILD = "resume_test_cluster_tree_child"


def _record(dag_id: str, step: str) -> int:
    """Append ``step`` to the DAG's ledger; return how often ``step`` ran, this time included."""
    folder = Variable.get("resume_test_ledger_dir", default="")
    if not folder:
        return 1
    ledger = Path(folder) / f"{dag_id}.txt"
    with ledger.open("a") as fh:
        fh.write(step + "\n")
    return ledger.read_text().split().count(step)


with DAG(CHILD, schedule=None, start_date=START, params={"resume": True}):

    @task
    def c_first():
        _record(CHILD, "c_first")
        return 20

    @task
    def c_middle(value: int):
        if _record(CHILD, "c_middle") == 1:
            raise ValueError("c_middle fails the first time it runs")
        return value + 1

    @task
    def c_last(value: int):
        _record(CHILD, "c_last")
        return value * 2

    c_last(c_middle(c_first()))


with DAG(PARENT, schedule=None, start_date=START, params={"resume": {"retries": 1, "on_retry": True}}):

    @task
    def p_first():
        _record(PARENT, "p_first")
        return "p"

    @task
    def p_last(ti=None):
        _record(PARENT, "p_last")
        return ti.xcom_pull(task_ids="run_child", key="trigger_run_id")

    run_child = TriggerDagRunOperator(
        task_id="run_child", trigger_dag_id=CHILD, wait_for_completion=True, poke_interval=1
    )
    p_first() >> run_child >> p_last()

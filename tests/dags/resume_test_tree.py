"""
DAGs that trigger DAGs, for the tree tests (a parent run's trigger step resumes its failed child run).

``resume_test_tree_parent``: ``p_first >> trigger_child >> p_last``; ``trigger_child`` triggers
``resume_test_tree_child`` and waits for it (deferrable). ``resume_test_tree_child``: ``c_first >>
c_middle >> trigger_grandchild >> c_last``; ``trigger_grandchild`` triggers ``resume_test_tree_grandchild``
(``g_first >> g_last``) and waits for it. ``resume_test_tree_mapped``: ``m_first >> trigger_leaves``
(mapped over three confs) ``>> m_last``, each map index triggering ``resume_test_tree_leaf``
(``l_first >> l_check``).

The task named by the Variable ``resume_test_tree_fail`` raises (``l_check`` raises when its run's conf
``n`` equals the Variable ``resume_test_tree_fail_n``). Every executed task appends
``<dag suffix>.<task>`` to the file named by the Variable ``resume_test_ledger`` (when set).
"""

from __future__ import annotations

import pendulum
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG, Variable, task

START = pendulum.datetime(2026, 1, 1, tz="UTC")


def _note(step: str) -> None:
    ledger = Variable.get("resume_test_ledger", default="")
    if ledger:
        with open(ledger, "a") as fh:
            fh.write(step + "\n")
    if Variable.get("resume_test_tree_fail", default="") == step:
        raise ValueError(f"{step} failed on purpose")


def _wait(task_id: str, dag_id: str) -> TriggerDagRunOperator:
    return TriggerDagRunOperator(
        task_id=task_id,
        trigger_dag_id=dag_id,
        wait_for_completion=True,
        deferrable=True,
        poke_interval=1,
    )


with DAG("resume_test_tree_grandchild", schedule=None, start_date=START, params={"resume": True}):

    @task
    def g_first():
        _note("grandchild.g_first")
        return "g"

    @task
    def g_last(value: str):
        _note("grandchild.g_last")
        return value + "!"

    g_last(g_first())


with DAG("resume_test_tree_child", schedule=None, start_date=START, params={"resume": True}):

    @task
    def c_first():
        _note("child.c_first")
        return 1

    @task
    def c_middle(value: int):
        _note("child.c_middle")
        return value + 1

    @task
    def c_last(ti=None):
        _note("child.c_last")
        return ti.xcom_pull(task_ids="c_middle")

    c_middle(c_first()) >> _wait("trigger_grandchild", "resume_test_tree_grandchild") >> c_last()


with DAG("resume_test_tree_parent", schedule=None, start_date=START, params={"resume": True}):

    @task
    def p_first():
        _note("parent.p_first")
        return "p"

    @task
    def p_last(ti=None):
        _note("parent.p_last")
        return ti.xcom_pull(task_ids="trigger_child", key="trigger_run_id")

    p_first() >> _wait("trigger_child", "resume_test_tree_child") >> p_last()


with DAG("resume_test_tree_leaf", schedule=None, start_date=START, params={"resume": True}):

    @task
    def l_first(dag_run=None):
        _note(f"leaf.l_first[{dag_run.conf.get('n')}]")
        return dag_run.conf.get("n")

    @task
    def l_check(n: int):
        _note(f"leaf.l_check[{n}]")
        if str(n) == Variable.get("resume_test_tree_fail_n", default=""):
            raise ValueError(f"leaf {n} failed on purpose")
        return n * 10

    l_check(l_first())


with DAG("resume_test_tree_mapped", schedule=None, start_date=START, params={"resume": True}):

    @task
    def m_first():
        _note("mapped.m_first")
        return 0

    @task
    def m_last(ti=None):
        _note("mapped.m_last")
        return list(ti.xcom_pull(task_ids="trigger_leaves", key="trigger_run_id"))

    leaves = TriggerDagRunOperator.partial(
        task_id="trigger_leaves",
        trigger_dag_id="resume_test_tree_leaf",
        wait_for_completion=True,
        deferrable=True,
        poke_interval=1,
    ).expand(conf=[{"n": 0}, {"n": 1}, {"n": 2}])
    m_first() >> leaves >> m_last()

"""
A parent DAG that runs a child DAG and waits for it, both with Job Resume enabled: resuming the tree.

``resume_example_parent``: ``prepare >> run_child >> publish``, where ``run_child`` triggers
``resume_example_child`` and waits for it. ``resume_example_child``: ``extract >> transform >> load``;
``transform`` fails while the Variable ``resume_example_child_fail`` is "true" (the default), so the
child run fails, and with it the parent's ``run_child`` step.

Set the Variable to "false" (the fix), then resume the failed **parent** run: the child run is resumed
at ``transform`` (``extract`` is not run again), the parent's ``run_child`` waits for that resumed child
run instead of triggering a new one, and ``publish`` runs when it succeeds. Each level's resumed run
records the one above it. A child run that cannot be resumed (its DAG's structure changed, say) makes
the parent refuse, unless the resume asks to rerun children (``rerun_children``): then ``run_child``
triggers a fresh full child run, as it always did.
"""

from __future__ import annotations

import pendulum
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG, Variable, task

START = pendulum.datetime(2026, 1, 1, tz="UTC")

with DAG(
    dag_id="resume_example_child",
    schedule=None,
    start_date=START,
    catchup=False,
    params={"resume": True},
    tags=["resume-example"],
    doc_md=__doc__,
):

    @task
    def extract(dag_run=None):
        batch = (dag_run.conf or {}).get("batch", "default")
        return [{"batch": batch, "id": i, "amount": i * 10} for i in range(1, 4)]

    @task
    def transform(rows: list):
        if Variable.get("resume_example_child_fail", default="true").lower() == "true":
            raise RuntimeError("transform failed: the bug is still there")
        return [{**row, "amount": row["amount"] * 2} for row in rows]

    @task
    def load(rows: list):
        return {"loaded": len(rows), "total": sum(row["amount"] for row in rows)}

    load(transform(extract()))


with DAG(
    dag_id="resume_example_parent",
    schedule=None,
    start_date=START,
    catchup=False,
    params={"resume": True},
    tags=["resume-example"],
    doc_md=__doc__,
):

    @task
    def prepare():
        return "nightly"

    run_child = TriggerDagRunOperator(
        task_id="run_child",
        trigger_dag_id="resume_example_child",
        conf={"batch": "{{ ti.xcom_pull(task_ids='prepare') }}"},
        wait_for_completion=True,
        poke_interval=2,
    )

    @task
    def publish(ti=None):
        return {"child_run": ti.xcom_pull(task_ids="run_child", key="trigger_run_id")}

    prepare() >> run_child >> publish()

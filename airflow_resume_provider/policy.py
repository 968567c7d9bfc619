"""
Cluster policies registered through the ``airflow.policy`` entry point.

``dag_policy`` validates DAGs that opt in (the ``resume`` param and a linear structure); a violation
becomes a DAG import error with the message. DAGs that do not opt in are left untouched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.policies import hookimpl

from airflow_resume_provider.compat import airflow_supported
from airflow_resume_provider.exceptions import NonLinearDagError, ResumeConfigError
from airflow_resume_provider.guard import DAG as DAG_IMPACT
from airflow_resume_provider.guard import TASK, guarded, never_raises
from airflow_resume_provider.persisted import RETRIES_TAG
from airflow_resume_provider.resume_param import settings_for
from airflow_resume_provider.structure import linear_order

if TYPE_CHECKING:
    from airflow.sdk import DAG


@hookimpl
def dag_policy(dag: DAG) -> None:
    from airflow.exceptions import AirflowClusterPolicyViolation

    violation = None
    with guarded(f"Checking DAG {getattr(dag, 'dag_id', '?')!r} for resume", DAG_IMPACT):
        violation = _violation(dag)
    # Deliberate: an opted-in DAG that is invalid is a DAG import error naming the problem.
    if violation is not None:
        raise AirflowClusterPolicyViolation(violation)


def _violation(dag: DAG) -> str | None:
    """Why an opted-in DAG is invalid, or None; tags DAGs that retry automatically."""
    if not airflow_supported():
        return None
    try:
        settings = settings_for(dag)
        if settings.enabled:
            linear_order(dag)
    except (ResumeConfigError, NonLinearDagError) as err:
        return str(err)
    if settings.enabled and settings.retries > 0:
        dag.tags = {*(dag.tags or ()), RETRIES_TAG}
    return None


@hookimpl
@never_raises("Preparing a task for resumed runs", TASK)
def task_policy(task) -> None:
    """In DAGs with resume enabled, tasks of resumed runs see the original run's context."""
    dag = getattr(task, "dag", None)
    if dag is None or not airflow_supported():
        return
    try:
        enabled = settings_for(dag).enabled
    except ResumeConfigError:
        return  # reported by dag_policy
    if enabled:
        from airflow_resume_provider.resumed_context import wrap_render_template_fields

        wrap_render_template_fields(task)

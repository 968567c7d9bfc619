"""Listener hooks. Thin: each hands over to the module that decides, and never raises."""

from __future__ import annotations

import logging
from typing import Any

from airflow.listeners import hookimpl

log = logging.getLogger(__name__)


@hookimpl
def on_task_instance_running(previous_state: Any, task_instance: Any) -> None:
    try:
        from airflow_resume_provider import capture

        if capture.is_task_runner_instance(task_instance):
            capture.capture_attempt(task_instance)
    except Exception:
        log.warning("Resume capture failed; no impact on the task.", exc_info=True)


@hookimpl
def on_task_instance_failed(previous_state: Any, task_instance: Any, error: Any) -> None:
    try:
        from airflow_resume_provider import capture

        if capture.is_task_runner_instance(task_instance):
            capture.record_failure(task_instance, error)
            capture.forget(task_instance)
        elif previous_state is None:
            # The API server's "mark as failed" (a person's decision), as opposed to a scheduler-side
            # failure (heartbeat timeout, executor report), which comes with the previous state.
            from airflow_resume_provider.manual_kill import record_manual_failure

            record_manual_failure(task_instance, str(error))
    except Exception:
        log.warning("Resume failure record failed; no impact on the task.", exc_info=True)


@hookimpl
def on_task_instance_success(previous_state: Any, task_instance: Any) -> None:
    try:
        from airflow_resume_provider import capture

        if capture.is_task_runner_instance(task_instance):
            capture.forget(task_instance)
    except Exception:
        log.warning("Resume bookkeeping failed; no impact on the task.", exc_info=True)


def _job_type(component: Any) -> str | None:
    return getattr(component, "job_type", None)


@hookimpl
def on_starting(component: Any) -> None:
    try:
        if type(component).__name__ == "Job":
            from airflow_resume_provider.retry import handoff

            # The hook runs inside Job.__init__, before the job runner sets job_type: look a moment later.
            handoff.start_worker_when(lambda: _job_type(component))
    except Exception:
        log.warning("Could not start the resume retry worker; no impact on the scheduler.", exc_info=True)


@hookimpl
def before_stopping(component: Any) -> None:
    try:
        if type(component).__name__ == "Job":
            from airflow_resume_provider.retry import handoff

            handoff.stop_worker()  # a no-op in processes that did not start it
    except Exception:
        log.warning("Could not stop the resume retry worker; no impact on the scheduler.", exc_info=True)


@hookimpl
def on_dag_run_failed(dag_run: Any, msg: str) -> None:
    try:
        from airflow_resume_provider.retry import handoff

        handoff.on_run_failed(dag_run, msg)
    except Exception:
        log.warning(
            "Could not queue the run for an automatic retry; no impact on the scheduler.", exc_info=True
        )


@hookimpl
def on_dag_run_running(dag_run: Any, msg: str) -> None:
    try:
        from airflow_resume_provider.retry import handoff

        handoff.on_run_event()
    except Exception:
        log.warning("Could not check the resume retry worker; no impact on the scheduler.", exc_info=True)


@hookimpl
def on_dag_run_success(dag_run: Any, msg: str) -> None:
    try:
        from airflow_resume_provider.retry import handoff

        handoff.on_run_event()
    except Exception:
        log.warning("Could not check the resume retry worker; no impact on the scheduler.", exc_info=True)

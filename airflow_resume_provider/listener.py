"""Listener hooks. Thin: each hands over to the module that decides, under the provider's guard."""

from __future__ import annotations

from typing import Any

from airflow.listeners import hookimpl

from airflow_resume_provider.guard import SCHEDULER, TASK, never_raises


@hookimpl
@never_raises("Resume capture", TASK)
def on_task_instance_running(previous_state: Any, task_instance: Any) -> None:
    from airflow_resume_provider import capture

    if capture.is_task_runner_instance(task_instance):
        capture.capture_attempt(task_instance)


@hookimpl
@never_raises("Resume failure record", TASK)
def on_task_instance_failed(previous_state: Any, task_instance: Any, error: Any) -> None:
    from airflow_resume_provider import capture

    if capture.is_task_runner_instance(task_instance):
        capture.record_failure(task_instance, error)
        capture.forget(task_instance)
    elif previous_state is None:
        # The API server's "mark as failed" (a person's decision), as opposed to a scheduler-side
        # failure (heartbeat timeout, executor report), which comes with the previous state.
        from airflow_resume_provider.manual_kill import record_manual_failure

        record_manual_failure(task_instance, str(error))


@hookimpl
@never_raises("Resume bookkeeping", TASK)
def on_task_instance_success(previous_state: Any, task_instance: Any) -> None:
    from airflow_resume_provider import capture

    if capture.is_task_runner_instance(task_instance):
        capture.forget(task_instance)


def _job_type(component: Any) -> str | None:
    return getattr(component, "job_type", None)


@hookimpl
@never_raises("Starting the resume retry worker", SCHEDULER)
def on_starting(component: Any) -> None:
    if type(component).__name__ == "Job":
        from airflow_resume_provider.retry import handoff

        # The hook runs inside Job.__init__, before the job runner sets job_type: look a moment later.
        handoff.start_worker_when(lambda: _job_type(component))


@hookimpl
@never_raises("Stopping the resume retry worker", SCHEDULER)
def before_stopping(component: Any) -> None:
    if type(component).__name__ == "Job":
        from airflow_resume_provider.retry import handoff

        handoff.stop_worker()  # a no-op in processes that did not start it


@hookimpl
@never_raises("Queueing the run for an automatic retry", SCHEDULER)
def on_dag_run_failed(dag_run: Any, msg: str) -> None:
    from airflow_resume_provider.retry import handoff

    handoff.on_run_failed(dag_run, msg)


@hookimpl
@never_raises("Checking the resume retry worker", SCHEDULER)
def on_dag_run_running(dag_run: Any, msg: str) -> None:
    from airflow_resume_provider.retry import handoff

    handoff.on_run_event()


@hookimpl
@never_raises("Checking the resume retry worker", SCHEDULER)
def on_dag_run_success(dag_run: Any, msg: str) -> None:
    from airflow_resume_provider.retry import handoff

    handoff.on_run_event()

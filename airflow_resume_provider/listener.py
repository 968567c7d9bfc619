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

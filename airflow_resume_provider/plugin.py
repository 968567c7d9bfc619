"""The Airflow plugin (entry point ``airflow.plugins``): registers the listener. No logic here."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from airflow_resume_provider import listener


class ResumePlugin(AirflowPlugin):
    name = "resume"
    listeners = [listener]

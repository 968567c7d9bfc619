"""The Airflow plugin (entry point ``airflow.plugins``): registers the listener and the app. No logic."""

from __future__ import annotations

import functools
from typing import Any

from airflow.plugins_manager import AirflowPlugin

from airflow_resume_provider import listener

URL_PREFIX = "/resume"


@functools.cache
def _fastapi_apps() -> list[dict[str, Any]]:
    from airflow_resume_provider.api.app import create_app

    return [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "Resume failed runs"}]


class ResumePlugin(AirflowPlugin):
    name = "resume"
    listeners = [listener]

    # Built on first access (only the API server asks), so task processes never import FastAPI.
    @property
    def fastapi_apps(self) -> list[dict[str, Any]]:  # type: ignore[override]
        return _fastapi_apps()

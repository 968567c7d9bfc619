"""The Airflow plugin (entry point ``airflow.plugins``): registers the listener and the app. No logic."""

from __future__ import annotations

import functools
from typing import Any

from airflow.plugins_manager import AirflowPlugin

from airflow_resume_provider import compat, conf, lineage, listener
from airflow_resume_provider.guard import guarded

URL_PREFIX = "/resume"


@functools.cache
def _fastapi_apps() -> list[dict[str, Any]]:
    from airflow_resume_provider.api.app import create_app

    return [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "Resume failed runs"}]


def _external_views() -> list[dict[str, Any]]:
    from urllib.parse import urlparse

    # The iframe uses href verbatim, so it must carry the path Airflow is served under, if any.
    base_path = urlparse(conf.api_base_url()).path.rstrip("/")
    return [
        {
            "name": "Resume",
            "href": f"{base_path}{URL_PREFIX}/ui/dags/{{DAG_ID}}/dagRuns/{{RUN_ID}}",
            "destination": "dag_run",
            "url_route": "resume",
        },
        {
            # The DAG's failed runs with their verdicts: preview and resume a selection (bulk resume).
            "name": "Resume",
            "href": f"{base_path}{URL_PREFIX}/ui/dags/{{DAG_ID}}",
            "destination": "dag",
            "url_route": "resume-runs",
        },
    ]


if compat.airflow_supported():
    # Every component loads the plugin when it starts: a bad [resume] option is logged there, once.
    with guarded("Checking the [resume] options", "this component"):
        conf.log_problems()


class ResumePlugin(AirflowPlugin):
    name = "resume"
    # On an Airflow below the provider's floor the plugin registers nothing (compat logs why).
    listeners = [listener, *lineage.listeners()] if compat.airflow_supported() else []

    # Built on first access (only the API server asks), so task processes never import FastAPI.
    @property
    def fastapi_apps(self) -> list[dict[str, Any]]:  # type: ignore[override]
        return _fastapi_apps() if compat.airflow_supported() else []

    @property
    def external_views(self) -> list[dict[str, Any]]:  # type: ignore[override]
        return _external_views() if compat.airflow_supported() else []

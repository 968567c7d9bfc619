"""
Authentication, authorization, audit and CSRF for the provider's routes.

The only module that imports Airflow's API security helpers, so their location is kept in one place.
"""

from __future__ import annotations

import hashlib
import hmac

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.common.db.common import SessionDep
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag
from airflow.api_fastapi.logging.decorators import action_logging
from fastapi import Depends, HTTPException, Request, status

__all__ = [
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "CanReadRuns",
    "CanTriggerRuns",
    "GetUserDep",
    "SessionDep",
    "audit",
    "can_trigger_runs",
    "csrf_protected",
    "csrf_token_for",
]

#: The UI's session cookie (``base_auth_manager.COOKIE_NAME_JWT_TOKEN``).
SESSION_COOKIE = "_token"
CSRF_HEADER = "X-Resume-CSRF-Token"

CanReadRuns = Depends(requires_access_dag("GET", DagAccessEntity.RUN))
CanTriggerRuns = Depends(requires_access_dag("POST", DagAccessEntity.RUN))


def audit(event: str):
    """Write the request to Airflow's audit log (``log`` table) with the user as owner."""
    return Depends(action_logging(event=event))


def can_trigger_runs(dag_id: str, user) -> bool:
    """Whether ``user`` may trigger (and so resume) runs of the DAG, per Airflow's auth manager."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails

    if user is None:
        return False
    return bool(
        get_auth_manager().is_authorized_dag(
            method="POST", access_entity=DagAccessEntity.RUN, details=DagDetails(id=dag_id), user=user
        )
    )


def _csrf_secret() -> bytes:
    from airflow.configuration import conf

    return (conf.get("api_auth", "jwt_secret", fallback="") or "").encode()


def csrf_token_for(session_cookie: str) -> str:
    """The CSRF token bound to one UI session: only pages served to that session carry it."""
    return hmac.new(_csrf_secret(), b"resume-csrf:" + session_cookie.encode(), hashlib.sha256).hexdigest()


def _check_csrf(request: Request) -> None:
    # A bearer token is never sent by a browser on its own, so such requests cannot be forged.
    if request.headers.get("authorization", "").lower().startswith("bearer "):
        return
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return  # not authenticated at all: the authorization dependency answers 401
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent or not hmac.compare_digest(sent, csrf_token_for(cookie)):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"Missing or invalid {CSRF_HEADER} header: a request authenticated by the session cookie must "
            "come from the Resume page (or use a bearer token).",
        )


csrf_protected = Depends(_check_csrf)

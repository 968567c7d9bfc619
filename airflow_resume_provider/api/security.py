"""
Authentication, authorization, audit and CSRF for the provider's routes.

The only module that imports Airflow's API security helpers, so their location is kept in one place.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING, Annotated

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
from airflow.api_fastapi.common.db.common import SessionDep
from airflow.api_fastapi.core_api.security import GetUserDep, bearer_scheme, get_user, requires_access_dag
from airflow.api_fastapi.logging.decorators import action_logging
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials  # noqa: TC002 - FastAPI resolves it at runtime

from airflow_resume_provider import compat, conf

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow.api_fastapi.auth.managers.base_auth_manager import ResourceMethod

__all__ = [
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "CanReadRuns",
    "CanTriggerRuns",
    "GetUserDep",
    "SessionDep",
    "SignedIn",
    "audit",
    "can_read_xcoms",
    "can_trigger_runs",
    "csrf_protected",
    "csrf_token_for",
    "dag_details",
]

#: The UI's session cookie (``base_auth_manager.COOKIE_NAME_JWT_TOKEN``).
SESSION_COOKIE = "_token"
CSRF_HEADER = "X-Resume-CSRF-Token"

# Airflow's own route dependency: it resolves the DAG (from the path) and its team itself.
CanReadRuns = Depends(requires_access_dag("GET", DagAccessEntity.RUN))
CanTriggerRuns = Depends(requires_access_dag("POST", DagAccessEntity.RUN))
#: Any authenticated user (bearer token or session cookie); 401 otherwise.
SignedIn = Depends(get_user)


def audit(event: str):
    """Write the request to Airflow's audit log (``log`` table) with the user as owner."""
    return Depends(action_logging(event=event))


def dag_details(dag_id: str) -> DagDetails:
    """
    The DAG as the auth manager is asked about it: its id and its team (with ``[core] multi_team``, the
    team of the DAG bundle it was parsed from), resolved as Airflow's own ``requires_access_dag`` does.
    Without the team, a team-aware auth manager would judge another team's DAG as a DAG of no team.
    """
    from airflow.models.dag import DagModel

    return DagDetails(id=dag_id, team_name=DagModel.get_team_name(dag_id))


def _is_authorized_dag(method: ResourceMethod, access_entity: DagAccessEntity, dag_id: str, user) -> bool:
    from airflow.api_fastapi.app import get_auth_manager

    if user is None:
        return False
    return bool(
        get_auth_manager().is_authorized_dag(
            method=method, access_entity=access_entity, details=dag_details(dag_id), user=user
        )
    )


def can_read_runs(dag_id: str, user) -> bool:
    """Whether ``user`` may read runs of the DAG (a child DAG's, say), per Airflow's auth manager."""
    return _is_authorized_dag("GET", DagAccessEntity.RUN, dag_id, user)


def can_trigger_runs(dag_id: str, user) -> bool:
    """Whether ``user`` may trigger (and so resume) runs of the DAG, per Airflow's auth manager."""
    return _is_authorized_dag("POST", DagAccessEntity.RUN, dag_id, user)


def runs_readable_by(user) -> Callable[[str], bool]:
    """Whether ``user`` may read runs of a DAG, asked by DAG id (a tree's child DAGs)."""
    return lambda dag_id: can_read_runs(dag_id, user)


def runs_triggerable_by(user) -> Callable[[str], bool]:
    """Whether ``user`` may trigger runs of a DAG, asked by DAG id (a tree's child DAGs)."""
    return lambda dag_id: can_trigger_runs(dag_id, user)


def require_trigger_permission(dag_id: str, user) -> None:
    """403 unless ``user`` may trigger (and so resume) runs of the DAG; routes whose dry run needs read."""
    if not can_trigger_runs(dag_id, user):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"Resuming runs of DAG {dag_id!r} needs permission to trigger its runs; a dry run does not.",
        )


def can_read_xcoms(dag_id: str, user) -> bool:
    """
    Whether ``user`` may read the DAG's XCom values, per Airflow's auth manager.

    Airflow guards XComs with their own permission, apart from reading runs: a user who may see a
    run may still be refused its XComs (Airflow's own XCom routes answer 403), so the Resume page
    shows such a user the XCom keys and sizes only. SimpleAuthManager cannot express that user (all
    its roles that read runs read XComs), so the decision is tested end to end with the test-only
    auth manager ``tests.auth_manager.StackAuthManager``.
    """
    return _is_authorized_dag("GET", DagAccessEntity.XCOM, dag_id, user)


def csrf_token_for(session_cookie: str) -> str:
    """The CSRF token bound to one UI session: only pages served to that session carry it."""
    return hmac.new(conf.jwt_secret(), b"resume-csrf:" + session_cookie.encode(), hashlib.sha256).hexdigest()


def _check_csrf(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> None:
    # A bearer token is never sent by a browser on its own, so a request it authenticates cannot be
    # forged. Only a token Airflow's ``get_user`` actually used counts: it reads the same
    # ``bearer_scheme`` and, when that yields credentials, authenticates by them alone (or refuses the
    # request). A header that merely starts with "Bearer" but holds no token (blank, or whitespace
    # such as a non-breaking space) yields none, and ``get_user`` falls back to the session cookie.
    # Before Airflow 3.3 a valid session cookie wins over any bearer token, so the cookie is what counts.
    if (
        bearer is not None
        and bearer.scheme.lower() == "bearer"
        and bearer.credentials
        and not compat.session_user_wins_over_bearer(request)
    ):
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

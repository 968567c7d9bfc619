"""
A test-only auth manager: Airflow's SimpleAuthManager plus one user who may read runs but not XComs.

SimpleAuthManager grants by role only, and every role that may read a DAG's runs may also read its
XComs, so it cannot express the user the Resume page must hide XCom values from. The end-to-end and
browser stacks use this subclass (``AIRFLOW__CORE__AUTH_MANAGER=tests.auth_manager.NoXComAuditorAuthManager``)
to test that decision against a real api-server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

if TYPE_CHECKING:
    from airflow.api_fastapi.auth.managers.base_auth_manager import ResourceMethod
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

#: The user (role ``viewer``, see ``tools.airflow_stack.USERS``) who may not read XComs.
AUDITOR = "auditor"


class NoXComAuditorAuthManager(SimpleAuthManager):
    """SimpleAuthManager, except that the user ``auditor`` may not read (or write) any DAG's XComs."""

    def is_authorized_dag(
        self,
        *,
        method: ResourceMethod,
        user: SimpleAuthManagerUser,
        access_entity: DagAccessEntity | None = None,
        details: DagDetails | None = None,
    ) -> bool:
        if access_entity == DagAccessEntity.XCOM and user.get_name() == AUDITOR:
            return False
        return super().is_authorized_dag(
            method=method, user=user, access_entity=access_entity, details=details
        )

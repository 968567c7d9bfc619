"""
The test stacks' auth manager: Airflow's SimpleAuthManager plus users it cannot express.

SimpleAuthManager grants by role (and, with ``[core] multi_team``, by the teams listed beside a user),
and every role that may read a DAG's runs may also read its XComs and every DAG of the user's teams
only. The end-to-end and browser stacks use this subclass
(``AIRFLOW__CORE__AUTH_MANAGER=tests.auth_manager.StackAuthManager``) to test the provider's
decisions against a real api-server with two more kinds of user:

- ``auditor`` (role viewer) may read runs but not the XComs of any DAG;
- ``carol`` (role user, team ``team_a``) may read the runs of every team's DAGs but trigger runs and
  read XComs only of her own team's DAGs, the user a team-blind permission check would let resume
  another team's runs. ``alice`` (role user, team ``team_a``) is a plain SimpleAuthManager team member;
- ``operator`` (role op) may neither read nor trigger runs of the child DAGs of the tree tests
  (``CHILD_DAGS_HIDDEN_FROM_OPERATOR``): a user who may resume a parent run but not see its child's.

Users and teams are set in ``tools.airflow_stack`` (``USERS``, ``TEAM_USERS``).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

if TYPE_CHECKING:
    from airflow.api_fastapi.auth.managers.base_auth_manager import ResourceMethod
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

#: The user (role ``viewer``, see ``tools.airflow_stack.USERS``) who may not read XComs.
AUDITOR = "auditor"
#: The team member who may read every team's runs (not their XComs) and trigger only her own team's.
CROSS_TEAM_READER = "carol"
#: The user who may resume the tree tests' parent runs but not read or trigger their child DAGs' runs.
OPERATOR = "operator"
CHILD_DAGS_HIDDEN_FROM_OPERATOR = frozenset({"resume_example_child", "resume_e2e_tree_child"})


class StackAuthManager(SimpleAuthManager):
    """
    SimpleAuthManager, except for ``auditor`` (no XComs), ``carol`` (reads every team's runs) and
    ``operator`` (not the tree tests' child DAGs).
    """

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
        if (
            user.get_name() == OPERATOR
            and details is not None
            and details.id in CHILD_DAGS_HIDDEN_FROM_OPERATOR
        ):
            return False
        if (
            user.get_name() == CROSS_TEAM_READER
            and method == "GET"
            and access_entity != DagAccessEntity.XCOM
            and details is not None
        ):
            details = dataclasses.replace(details, team_name=None)
        return super().is_authorized_dag(
            method=method, user=user, access_entity=access_entity, details=details
        )

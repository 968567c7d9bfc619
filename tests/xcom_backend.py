"""
The end-to-end stack's ``[core] xcom_backend``: Airflow's own, except that it refuses the provider's
announcement (``resume_state_ref``) of the tasks of one DAG, as a custom backend with rules of its own
may. Every other DAG's XComs are stored exactly as Airflow's default backend stores them.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk.bases.xcom import BaseXCom

#: The DAG whose announcements are refused (tests/dags/resume_test_xcom_rejected.py).
REJECTING_DAG_ID = "resume_test_xcom_rejected"
REJECTED_KEY = "resume_state_ref"


class RejectingXComBackend(BaseXCom):
    @staticmethod
    def serialize_value(
        value: Any,
        *,
        key: str | None = None,
        task_id: str | None = None,
        dag_id: str | None = None,
        run_id: str | None = None,
        map_index: int | None = None,
    ) -> str:
        if dag_id == REJECTING_DAG_ID and key == REJECTED_KEY:
            raise ValueError(f"this XCom backend refuses {key!r} values of DAG {dag_id!r}")
        return BaseXCom.serialize_value(
            value, key=key, task_id=task_id, dag_id=dag_id, run_id=run_id, map_index=map_index
        )

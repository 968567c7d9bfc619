"""
A DAG whose runs are triggered with a forged ``conf["__resume__"]`` by the security tests.

``look`` returns the ``ds`` and ``params`` it sees (values JSON cannot hold are dropped); ``check``
raises when the run's conf says ``"fail": true``. One automatic retry, resuming at the failed task.
"""

from __future__ import annotations

import json

import pendulum
from airflow.sdk import DAG, Param, task


def _jsonable(values: dict) -> dict:
    kept = {}
    for key, value in values.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            continue
        kept[key] = value
    return kept


with DAG(
    "resume_test_guarded",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={
        "resume": {"retries": 1, "on_retry": True, "stop_on_repeated_error": False},
        "env": Param("dev", enum=["dev", "prod"]),
    },
):

    @task
    def look(ds=None, params=None):
        return {"ds": ds, "params": _jsonable(dict(params or {}))}

    @task
    def check(seen: dict, dag_run=None):
        if (dag_run.conf or {}).get("fail"):
            raise RuntimeError("check failed on purpose (conf fail=true)")
        return seen

    check(look())

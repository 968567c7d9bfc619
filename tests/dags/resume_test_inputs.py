"""Changed inputs: a threshold gate, a sensitive param, a task-level param, and a ledger of executions."""

from __future__ import annotations

from pathlib import Path

from airflow.sdk import DAG, Param, Variable, task


def _record(name: str) -> None:
    ledger = Variable.get("resume_test_ledger", default="")
    if ledger:
        with Path(ledger).open("a") as f:
            f.write(name + "\n")


with DAG(
    "resume_test_inputs",
    schedule=None,
    params={
        "resume": True,
        "threshold": Param(10, type="integer", minimum=1),
        "api_key": Param("original-key", type="string"),
        "mode": Param("strict", enum=["strict", "lenient"]),
    },
):

    @task
    def extract():
        _record("extract")
        return 12

    @task
    def check(rows: int, params=None):
        _record("check")
        if rows > params["threshold"]:
            raise ValueError(f"{rows} rows exceed the threshold {params['threshold']}")
        return rows

    @task(params={"batch": 5})
    def load(rows: int, rendered: str = "", params=None, dag_run=None):
        _record("load")
        return {
            "rows": rows,
            "rendered": rendered,
            "threshold": params["threshold"],
            "api_key": params["api_key"],
            "mode": params["mode"],
            "batch": params["batch"],
            "conf": {k: v for k, v in (dag_run.conf or {}).items()},
        }

    load(check(extract()), rendered="{{ params.threshold }} {{ params.mode }} {{ ds }}")

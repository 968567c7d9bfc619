"""What the end-to-end tests read about runs through Airflow's REST API, shared by their modules."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from tools.airflow_stack import wait_for


def q(value: str) -> str:
    """A run id (or any id) as one URL path segment."""
    return quote(value, safe="")


def chain_runs(stack, dag_id: str, root: str) -> dict[int, str]:
    """The runs resuming ``root``, by their place in the chain (ids: ``resume__<root>__<n>__<tag>``)."""
    with stack.client() as c:
        runs = c.get(f"/api/v2/dags/{dag_id}/dagRuns", params={"limit": 100}).json()["dag_runs"]
    prefix = f"resume__{root}__"
    found = {}
    for run in runs:
        if run["dag_run_id"].startswith(prefix):
            n, _, _tag = run["dag_run_id"][len(prefix) :].partition("__")
            found[int(n)] = run["dag_run_id"]
    return found


def wait_for_chain_run(stack, dag_id: str, root: str, n: int, timeout: float = 120) -> str:
    return wait_for(
        lambda: chain_runs(stack, dag_id, root).get(n),
        timeout=timeout,
        interval=1,
        what=f"retry {n} of {root} created",
    )


def wait_for_note(stack, dag_id: str, run_id: str, *texts: str, timeout: float = 120) -> str:
    """The run's note, once it contains any of ``texts``."""
    return wait_for(
        lambda: (note := stack.note(dag_id, run_id)) and any(t in note for t in texts) and note,
        timeout=timeout,
        interval=1,
        what=f"note of {run_id} containing one of {texts!r}",
    )


def xcom_value(stack, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
    with stack.client() as c:
        resp = c.get(f"/api/v2/dags/{dag_id}/dagRuns/{q(run_id)}/taskInstances/{task_id}/xcomEntries/{key}")
    assert resp.status_code == 200, resp.text
    value = resp.json()["value"]
    return json.loads(value) if isinstance(value, str) else value

"""What the end-to-end tests read about runs through Airflow's REST API, shared by their modules."""

from __future__ import annotations

import contextlib
import json
import random
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from tools.airflow_stack import wait_for

if TYPE_CHECKING:
    from collections.abc import Iterator

    import httpx

#: The provider's REST API on the api-server.
API = "/resume/api/v1"


def q(value: str) -> str:
    """A run id (or any id) as one URL path segment."""
    return quote(value, safe="")


def unique_logical_date() -> str:
    """A logical date no other run of the DAG is likely to have, after the DAGs' start date (2026-01-01)."""
    start = datetime(2026, 1, 2, tzinfo=timezone.utc)
    return (start + timedelta(minutes=random.randrange(300_000))).isoformat()


def resume_runs(stack, dag_id: str, root: str) -> list[str]:
    """Ids of the runs resuming ``root`` (``resume__<root>__<n>__<tag>``), oldest first."""
    return [r["dag_run_id"] for r in stack.dag_runs(dag_id, run_id_prefix=f"resume__{root}__")]


def chain_runs(stack, dag_id: str, root: str) -> dict[int, str]:
    """The runs resuming ``root``, by their place in the chain."""
    prefix = f"resume__{root}__"
    found = {}
    for run_id in resume_runs(stack, dag_id, root):
        n, _, _tag = run_id[len(prefix) :].partition("__")
        found[int(n)] = run_id
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


def xcom_value(
    stack, dag_id: str, run_id: str, task_id: str, key: str = "return_value", map_index: int = -1
) -> Any:
    with stack.client() as c:
        resp = c.get(
            f"/api/v2/dags/{dag_id}/dagRuns/{q(run_id)}/taskInstances/{task_id}/xcomEntries/{key}",
            params={"map_index": map_index},
        )
    assert resp.status_code == 200, f"{task_id}[{map_index}] {key}: {resp.status_code} {resp.text[:2000]}"
    value = resp.json()["value"]
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:  # a plain string value
            return value
    return value


def resume_url(dag_id: str, run_id: str) -> str:
    return f"{API}/dags/{q(dag_id)}/dagRuns/{q(run_id)}"


def verdict(stack, dag_id: str, run_id: str) -> dict[str, Any]:
    with stack.client() as c:
        resp = c.get(resume_url(dag_id, run_id))
    assert resp.status_code == 200, f"verdict: {resp.status_code} {resp.text[:2000]}"
    return resp.json()


def post_resume(stack, dag_id: str, run_id: str, body: dict[str, Any] | None = None) -> httpx.Response:
    with stack.client() as c:
        url = resume_url(dag_id, run_id) + "/resume"
        return c.post(url, json=body) if body is not None else c.post(url)


def resumed(stack, dag_id: str, run_id: str, body: dict[str, Any] | None = None) -> str:
    """Resume ``run_id`` (expecting a new run) and return the new run's id."""
    resp = post_resume(stack, dag_id, run_id, body)
    assert resp.status_code == 201, f"resume: {resp.status_code} {resp.text[:2000]}"
    return resp.json()["dag_run_id"]


def refused(stack, dag_id: str, run_id: str, code: str, *texts: str) -> dict[str, Any]:
    """Check that the verdict refuses ``run_id`` with ``code`` and a reason holding ``texts``, and that a
    resume request is refused (409) the same way; the verdict."""
    body = verdict(stack, dag_id, run_id)
    assert body["resumable"] is False, body
    assert body["reason_code"] == code, body
    for text in texts:
        assert text in body["reason"], body["reason"]
    resp = post_resume(stack, dag_id, run_id)
    assert resp.status_code == 409, f"{resp.status_code}: {resp.text[:2000]}"
    assert resp.json()["reason_code"] == code
    return body


def write_dag(stack, name: str, source: str) -> None:
    """Write (or rewrite) the DAG file of DAG ``name`` and wait until Airflow serves the new source."""
    stack.write_dag_file(name, source)


@contextlib.contextmanager
def restarted_with(stack, env: dict[str, str]) -> Iterator[None]:
    """
    Restart the api-server and the scheduler with ``env`` added to their environment (and to the
    stack's CLI); on exit, restore the environment and restart them again.
    """
    saved = {key: stack.extra_env.get(key) for key in env}
    stack.extra_env.update(env)
    try:
        stack.restart("api-server", "scheduler")
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                stack.extra_env.pop(key, None)
            else:
                stack.extra_env[key] = value
        stack.restart("api-server", "scheduler")

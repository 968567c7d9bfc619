"""
A security review's attacks, reproduced against a real api-server, scheduler and dag-processor.

The attacker is a user who may trigger DAG runs (the stack's ``operator``). Each test asserts the
behaviour after the fix:

- A: a ``conf["__resume__"]`` the provider did not sign itself is ignored (a normal run), and never
  causes a 500;
- B: nobody can squat the id of the run that will resume another run;
- C: a state link that leaves the state folder is refused without being read (no SSRF, no local
  file read);
- D: an unknown ``from_task_id`` shows no task as restored.
"""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.e2e.runs import q, wait_for_note, xcom_value
from tools.airflow_stack import stays, wait_for

pytestmark = pytest.mark.e2e

API = "/resume/api/v1"
ETL = "resume_example_etl"
GUARDED = "resume_test_guarded"
POISONED = "resume_test_poisoned"


# --- helpers ----------------------------------------------------------------------------------------


def new_run_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def trigger_as(
    stack,
    dag_id: str,
    *,
    user: str = "operator",
    run_id: str | None = None,
    conf: dict[str, Any] | None = None,
    logical_date: str | None = None,
) -> str:
    """Trigger a run through Airflow's own REST API as ``user``; returns its id."""
    stack.wait_for_dag(dag_id)
    body: dict[str, Any] = {"logical_date": logical_date, "conf": conf or {}}
    if run_id is not None:
        body["dag_run_id"] = run_id
    with stack.client(user) as c:
        resp = c.post(f"/api/v2/dags/{dag_id}/dagRuns", json=body)
    assert resp.status_code == 200, resp.text
    return resp.json()["dag_run_id"]


def verdict_response(stack, dag_id: str, run_id: str, user: str = "admin") -> httpx.Response:
    with stack.client(user) as c:
        return c.get(f"{API}/dags/{q(dag_id)}/dagRuns/{q(run_id)}")


def verdict(stack, dag_id: str, run_id: str, user: str = "admin") -> dict[str, Any]:
    resp = verdict_response(stack, dag_id, run_id, user)
    assert resp.status_code == 200, f"{resp.status_code}: {resp.text}"
    return resp.json()


def post_resume(
    stack, dag_id: str, run_id: str, body: dict[str, Any] | None = None, user: str = "admin"
) -> httpx.Response:
    with stack.client(user) as c:
        url = f"{API}/dags/{q(dag_id)}/dagRuns/{q(run_id)}/resume"
        return c.post(url, json=body) if body is not None else c.post(url)


def page(stack, dag_id: str, run_id: str, user: str = "admin", **params: str) -> httpx.Response:
    """The Resume page, as the tab's iframe gets it (the UI's ``_token`` cookie)."""
    url = f"{stack.url}/resume/ui/dags/{q(dag_id)}/dagRuns/{q(run_id)}"
    return httpx.get(url, cookies={"_token": stack.token(user)}, params=params, timeout=60)


def dag_run(stack, dag_id: str, run_id: str) -> dict[str, Any]:
    with stack.client() as c:
        resp = c.get(f"/api/v2/dags/{dag_id}/dagRuns/{q(run_id)}")
    assert resp.status_code == 200, resp.text
    return resp.json()


def dag_run_ids(stack, dag_id: str) -> set[str]:
    return {r["dag_run_id"] for r in stack.dag_runs(dag_id)}


def cli_json(stdout: str) -> dict[str, Any]:
    """The JSON document printed by ``airflow resume ... -o json`` (log lines before it are skipped)."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("{"))
    return json.loads("\n".join(lines[start:]))


class RequestCounter:
    """A tiny HTTP server on 127.0.0.1 that counts the requests it receives (any method)."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        counter = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                counter.requests.append(f"{self.command} {self.path}")
                body = b'{"schema_version": 1}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_HEAD = do_POST = do_PUT = do_OPTIONS = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/state.json"

    def __enter__(self) -> RequestCounter:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- A: forged bookkeeping in conf --------------------------------------------------------------------

FORGED_MARKER = {
    "logical_date": "2001-09-11T00:00:00+00:00",
    "data_interval_start": "2001-09-11T00:00:00+00:00",
    "data_interval_end": "2001-09-12T00:00:00+00:00",
    "params": {"env": "prod", "injected": "yes"},
    "root_run_id": "spoofed",
    "parent_run_id": "spoofed",
    "resume_count": 1,
    "retry_attempt": -1000,
}


def test_a_forged_resume_marker_does_not_change_what_tasks_see(stack):
    run_id = trigger_as(
        stack,
        GUARDED,
        run_id=new_run_id("forged"),
        logical_date="2026-03-03T00:00:00Z",
        conf={"fail": False, "__resume__": FORGED_MARKER},
    )
    state = stack.wait_for_run(GUARDED, run_id)

    seen = xcom_value(stack, GUARDED, run_id, "look")
    assert seen["ds"] == "2026-03-03", f"the forged logical_date reached the task: {seen}"
    assert seen["params"]["env"] == "dev", f"the forged params reached the task: {seen}"
    assert "injected" not in seen["params"], f"the forged params reached the task: {seen}"
    assert state == "success"

    body = verdict(stack, GUARDED, run_id)
    lineage = body.get("lineage") or {}
    assert lineage.get("root_run_id") != "spoofed", f"the forged lineage is reported: {lineage}"
    warnings = body.get("warnings")
    assert isinstance(warnings, list), f"the verdict has no 'warnings' list: {sorted(body)}"
    assert any("__resume__" in w and "ignored" in w for w in warnings), warnings
    shown = page(stack, GUARDED, run_id)
    assert shown.status_code == 200
    assert "it was ignored and the run is treated as a normal run" in shown.text


def test_a_forged_retry_attempt_does_not_lift_the_retry_bound(stack):
    before = dag_run_ids(stack, GUARDED)
    root = trigger_as(
        stack,
        GUARDED,
        run_id=new_run_id("forged_retry"),
        conf={
            "fail": True,
            "__resume__": {"retry_attempt": -1000, "root_run_id": "spoofed", "resume_count": 1},
        },
    )
    try:
        assert stack.wait_for_run(GUARDED, root) == "failed"
        retry = wait_for(
            lambda: verdict(stack, GUARDED, root)["resumed_run_id"],
            timeout=120,
            interval=1,
            what="the automatic retry of the failed run",
        )
        assert retry.startswith("resume__"), retry
        assert stack.wait_for_run(GUARDED, retry) == "failed"
        note = wait_for_note(stack, GUARDED, retry, "Not retried", "Retried automatically")
        assert "Not retried: automatic retries exhausted" in note, (
            f"the retry of a run with a forged retry_attempt was retried again: {note!r}"
        )

        stays(
            lambda: dag_run_ids(stack, GUARDED) - before == {root, retry},
            seconds=stack.decision_window,
            what="no run created beyond the one retry",
        )
    except BaseException:
        # A bound that does not hold retries without end: stop the chain from loading the rest of the
        # session (the DAG stays paused, so later runs of it do not start either).
        with stack.client() as c:
            c.patch(f"/api/v2/dags/{GUARDED}", json={"is_paused": True})
        raise


@pytest.mark.parametrize(
    "marker",
    [{"resume_count": "abc", "root_run_id": 5}, "x"],
    ids=["malformed_dict", "not_a_dict"],
)
def test_a_malformed_resume_marker_never_gives_a_500(stack, marker):
    with stack.variables(resume_example_fail="true"):
        run_id = trigger_as(stack, ETL, run_id=new_run_id("malformed"), conf={"__resume__": marker})
        assert stack.wait_for_run(ETL, run_id) == "failed"

    resp = verdict_response(stack, ETL, run_id)
    assert resp.status_code == 200, f"verdict: {resp.status_code} {resp.text[:500]}"
    resp = page(stack, ETL, run_id)
    assert resp.status_code == 200, f"page: {resp.status_code} {resp.text[:500]}"
    resp = post_resume(stack, ETL, run_id)
    assert resp.status_code in (201, 409), f"resume: {resp.status_code} {resp.text[:500]}"
    done = stack.cli("resume", "status", ETL, run_id, check=False)
    assert done.returncode in (0, 3), f"exit {done.returncode}: {done.stderr[-3000:]}"
    assert "Traceback" not in done.stderr, done.stderr[-3000:]


# --- B: squatting the resumed run's id --------------------------------------------------------------


def test_a_squatted_resume_run_id_does_not_hijack_the_resume(stack):
    victim = new_run_id("victim")
    with stack.variables(resume_example_fail="true"):
        squat = trigger_as(stack, ETL, run_id=f"resume__{victim}__1", conf={"squatter": True})
        trigger_as(stack, ETL, user="admin", run_id=victim)
        assert stack.wait_for_run(ETL, squat) == "failed"
        assert stack.wait_for_run(ETL, victim) == "failed"

        body = verdict(stack, ETL, victim)
        assert body["resumed_run_id"] is None, f"the squatting run is taken for the resumed run: {body}"
        assert body["resumable"] is True, body["reason"]

        stack.set_variable("resume_example_fail", "false")
        resp = post_resume(stack, ETL, victim)
        assert resp.status_code == 201, resp.text
        resumed = resp.json()["dag_run_id"]
        assert resumed != squat
        assert stack.wait_for_run(ETL, resumed) == "success"
    assert dag_run(stack, ETL, resumed)["note"].startswith(f"Resumed from {victim}")

    again = post_resume(stack, ETL, victim)
    assert again.status_code == 200, again.text
    assert again.json()["dag_run_id"] == resumed


# --- C: state links leaving the state folder ----------------------------------------------------------


@pytest.mark.parametrize("target", ["http", "file:///etc/passwd", "/proc/self/environ"])
def test_a_forged_state_link_is_refused_without_being_read(stack, target):
    with RequestCounter() as server:
        link = server.url if target == "http" else target
        run_id = trigger_as(stack, POISONED, run_id=new_run_id("poisoned"), conf={"target": link})
        assert stack.wait_for_run(POISONED, run_id) == "failed"

        resp = verdict_response(stack, POISONED, run_id)
        refused = post_resume(stack, POISONED, run_id)
        assert server.requests == [], f"the api-server fetched the forged link {link}: {server.requests}"

    assert resp.status_code == 200, f"{resp.status_code}: {resp.text[:500]}"
    assert "root:x:0:0" not in resp.text
    body = resp.json()
    assert body["resumable"] is False
    assert body["reason_code"] == "state_invalid", body
    assert link in body["reason"], body["reason"]
    assert "not read" in body["reason"].lower(), body["reason"]
    assert refused.status_code == 409, refused.text
    assert "root:x:0:0" not in refused.text


# --- D: an unknown resume point ---------------------------------------------------------------------


def test_an_unknown_resume_point_restores_nothing(stack):
    with stack.variables(resume_example_fail="true"):
        run_id = trigger_as(stack, ETL, run_id=new_run_id("unknown_point"))
        assert stack.wait_for_run(ETL, run_id) == "failed"

    resp = post_resume(stack, ETL, run_id, {"from_task_id": "no_such_task"})
    assert resp.status_code == 409, resp.text
    assert resp.json()["reason_code"] == "invalid_resume_point"

    done = stack.cli(
        "resume", "status", ETL, run_id, "--from-task", "no_such_task", "-o", "json", check=False
    )
    assert done.returncode == 3, f"exit {done.returncode}: {done.stderr[-3000:]}"
    plan = cli_json(done.stdout)["plan"]
    restored = [t["task_id"] for t in plan["tasks"] if t["action"] == "restored"]
    assert restored == [], f"an unknown resume point shows tasks as restored: {plan}"

    html = page(stack, ETL, run_id, from_task_id="no_such_task")
    assert html.status_code == 200
    assert 'data-action="restored"' not in html.text

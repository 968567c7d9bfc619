"""The test stacks' own guarantees (tools/airflow_stack.py), without starting Airflow."""

from __future__ import annotations

import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tools import airflow_stack
from tools.airflow_stack import AirflowStack, ComponentDied, free_port, stays, wait_for


@pytest.fixture
def stack(tmp_path):
    stack = AirflowStack(home=tmp_path, port=1)
    airflow_stack._live_stacks.append(stack)
    yield stack
    airflow_stack._live_stacks.remove(stack)
    for proc in stack.processes.values():
        proc.kill()
        proc.wait()


def test_a_component_that_dies_fails_the_wait_at_once_naming_it_with_its_log(stack, tmp_path):
    (tmp_path / "dag-processor.out").write_text("parsing\nTraceback: the processor lost a race\n")
    stack.processes["dag-processor"] = subprocess.Popen(["sh", "-c", "exit 3"])
    stack.processes["scheduler"] = subprocess.Popen(["sleep", "60"])
    started = time.monotonic()
    with pytest.raises(ComponentDied) as died:
        wait_for(lambda: False, timeout=120, interval=0.1, what="a run that never ends")
    assert time.monotonic() - started < 10
    assert "dag-processor" in str(died.value) and "exited with 3" in str(died.value)
    assert "the processor lost a race" in str(died.value)
    assert "dag-processor" not in stack.processes, "reported once, not again by the next wait"
    assert "scheduler" in stack.processes


def test_a_component_handed_over_to_a_test_may_end(stack):
    stack.processes["scheduler"] = subprocess.Popen(["sh", "-c", "exit 0"])
    with stack.expecting_exit("scheduler") as proc:
        proc.wait()
        assert wait_for(lambda: "done", timeout=5, what="anything") == "done"


def test_stays_fails_as_soon_as_the_condition_breaks_and_passes_after_the_window():
    flips = iter([True, True, False])
    started = time.monotonic()
    with pytest.raises(AssertionError, match="note unchanged"):
        stays(lambda: next(flips), seconds=30, interval=0.05, what="note unchanged")
    assert time.monotonic() - started < 5
    started = time.monotonic()
    stays(lambda: True, seconds=0.3, interval=0.05, what="nothing")
    assert time.monotonic() - started >= 0.3


def test_ports_come_from_the_lane_range_and_skip_ports_in_use(monkeypatch):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        taken = busy.getsockname()[1]
        monkeypatch.setenv(airflow_stack.PORTS_VAR, f"{taken}-{taken + 2}")
        ports = [free_port(), free_port()]
    assert ports == [taken + 1, taken + 2]


def test_stack_writes_to_the_rest_api_survive_a_locked_sqlite(tmp_path):
    """Airflow answers 500 while SQLite is locked: the stack sends its REST write again."""
    answers = [500, 500, 200]
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_PATCH(self):
            seen.append(self.rfile.read(int(self.headers["Content-Length"])).decode())
            status = answers.pop(0)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"detail": "Internal Server Error"}' if status == 500 else b"{}")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        sqlite = AirflowStack(home=tmp_path, backend="sqlite", port=server.server_address[1])
        with sqlite.client(user=None) as c:
            assert c.patch("/api/v2/variables/k", json={"value": "v"}).status_code == 200
        assert len(seen) == 3 and len(set(seen)) == 1
        answers[:] = [500, 200]
        postgres = AirflowStack(home=tmp_path, backend="postgres", port=server.server_address[1])
        with postgres.client(user=None) as c:
            assert c.patch("/api/v2/variables/k", json={"value": "v"}).status_code == 500
    finally:
        server.shutdown()


def test_a_stack_with_teams_is_multi_team_with_a_bundle_and_members_per_team(tmp_path):
    import json

    plain = AirflowStack(home=tmp_path, port=1).env()
    assert (
        "AIRFLOW__CORE__MULTI_TEAM" not in plain
        and "alice" not in plain["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"]
    )

    env = AirflowStack(home=tmp_path, port=1, team_dag_sources={"team_a": tmp_path / "a"}).env()
    assert env["AIRFLOW__CORE__MULTI_TEAM"] == "True"
    bundles = json.loads(env["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"])
    assert [(b["name"], b.get("team_name")) for b in bundles] == [
        ("dags-folder", None),
        ("dags-team_a", "team_a"),
    ]
    assert bundles[1]["kwargs"] == {"path": str(tmp_path / "dags-team_a")}
    users = env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"].split(",")
    assert {"admin:admin", "alice:user:team_a", "carol:user:team_a"} <= set(users)

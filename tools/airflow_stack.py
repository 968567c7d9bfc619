"""
A real local Airflow: api-server, scheduler, dag-processor and triggerer as separate processes, on a fresh
metadata DB (SQLite file or a new PostgreSQL database), driven through the REST API.

Used by the quickstart, the end-to-end tests and the benchmarks.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from collections.abc import Iterator

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
#: Users of the local stack and their passwords; ``auditor`` has the role viewer (see ``env()``).
USERS = {
    "admin": "admin-pw",
    "viewer": "viewer-pw",
    "operator": "operator-pw",
    "auditor": "auditor-pw",
    "alice": "alice-pw",
    "carol": "carol-pw",
}
#: Members of a team (role user), on a stack with that team only (``AirflowStack.team_dag_sources``).
TEAM_USERS = {"alice": "team_a", "carol": "team_a"}


#: Port range of this test lane ("20000-20999"), so that lanes running side by side (scripts/test.sh)
#: never hand out the same port; unset, the system picks a free one.
PORTS_VAR = "RESUME_TEST_PORTS"
_next_port: dict[str, int] = {}


def free_port() -> int:
    lane = os.environ.get(PORTS_VAR)
    if not lane:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]
    first, _, last = lane.partition("-")
    low, high = int(first), int(last)
    port = _next_port.get(lane, low)
    for _ in range(high - low + 1):
        candidate, port = port, low + (port + 1 - low) % (high - low + 1)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", candidate))
            except OSError:
                continue
        _next_port[lane] = port
        return candidate
    raise RuntimeError(f"no free port in {PORTS_VAR}={lane}")


_CREATE_TEAMS = """
import sys
from airflow.models.team import Team
from airflow.utils.session import create_session
with create_session() as session:
    session.add_all(Team(name=name) for name in sys.argv[1:])
"""


class ComponentDied(AssertionError):
    """A component of a running stack exited while a test waited on it."""


#: Stacks that are up: every wait checks that their components still run.
_live_stacks: list[AirflowStack] = []


def _check_live_stacks() -> None:
    for stack in list(_live_stacks):
        stack.check_alive()


def wait_for(condition, *, timeout: float, interval: float = 0.5, what: str = "condition"):
    """Poll ``condition`` until it returns something truthy; fail at once if a stack's component died."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        _check_live_stacks()
        last = condition()
        if last:
            return last
        time.sleep(interval)
    raise TimeoutError(f"{what} not reached within {timeout:.0f}s (last: {last!r})")


def stays(condition, *, seconds: float, interval: float = 0.5, what: str) -> None:
    """Check that ``condition`` holds for ``seconds``: fail as soon as it does not."""
    deadline = time.monotonic() + seconds
    while True:
        _check_live_stacks()
        if not condition():
            raise AssertionError(
                f"{what}: no longer true after {seconds - (deadline - time.monotonic()):.1f}s"
            )
        if time.monotonic() >= deadline:
            return
        time.sleep(interval)


class _RetryLockedWrites(httpx.HTTPTransport):
    """
    Retries a request to Airflow's REST API that got a 500 on SQLite: a writer that found the database
    locked (the Execution API's first request, a scheduler loop) gets "Internal Server Error". The
    request did not commit, so sending it again is safe. The provider's own routes are not retried.
    """

    ATTEMPTS = 8

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        for attempt in range(self.ATTEMPTS):
            response = super().handle_request(request)
            if response.status_code != 500 or not request.url.path.startswith("/api/v2/"):
                return response
            if attempt + 1 < self.ATTEMPTS:
                response.read()
                response.close()
                time.sleep(0.25 * (attempt + 1))
        return response


@dataclass
class AirflowStack:
    home: Path
    backend: str = "sqlite"
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    dag_sources: tuple[Path, ...] = (REPO / "example_dags", REPO / "tests" / "dags")
    #: With teams, a multi-team stack (``[core] multi_team``): each team owns a DAG bundle of its own,
    #: holding the DAG files of the folder given here; the DAGs folder stays a bundle of no team.
    team_dag_sources: dict[str, Path] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    pg_db: str | None = None
    #: boto3 S3 client of the remote log bucket, when the stack logs to S3.
    s3: Any = None
    #: Bearer tokens by user, fetched once and reused by every request of the stack's life.
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def dags(self) -> Path:
        return self.home / "dags"

    def team_dags(self, team: str) -> Path:
        return self.home / f"dags-{team}"

    def dag_bundles(self) -> list[dict[str, Any]]:
        """``[dag_processor] dag_bundle_config_list``: Airflow's default, plus one bundle per team."""
        local = "airflow.dag_processing.bundles.local.LocalDagBundle"
        return [{"name": "dags-folder", "classpath": local, "kwargs": {}}] + [
            {
                "name": f"dags-{team}",
                "classpath": local,
                "kwargs": {"path": str(self.team_dags(team))},
                "team_name": team,
            }
            for team in self.team_dag_sources
        ]

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def scheduler_idle_sleep(self) -> float:
        # SQLite has one writer: a scheduler looping every 0.2 s makes other writers find it locked.
        return 1.0 if self.backend == "sqlite" else 0.2

    @property
    def retry_sweep_interval(self) -> float:
        return float(self.env()["AIRFLOW__RESUME__RETRY_SWEEP_INTERVAL"])

    @property
    def decision_window(self) -> float:
        """
        How long the stack takes at most to make an automatic decision it is going to make (a retry,
        a note): three retry sweeps and three scheduler loops. A test that checks that nothing more
        happens watches for this long.
        """
        return 3 * self.retry_sweep_interval + 3 * (self.scheduler_idle_sleep + 1)

    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("AIRFLOW") and k != "_AIRFLOW_PROCESS_CONTEXT"
        }
        env.update(
            PATH=f"{BIN}:{env.get('PATH', '')}",
            AIRFLOW_HOME=str(self.home),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__DAGS_FOLDER=str(self.dags),
            AIRFLOW__CORE__EXECUTOR="LocalExecutor",
            AIRFLOW__CORE__PARALLELISM="3",
            AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="admin:admin,viewer:viewer,operator:op,auditor:viewer",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(self.home / "passwords.json"),
            AIRFLOW__API__PORT=str(self.port),
            AIRFLOW__API__HOST="127.0.0.1",
            AIRFLOW__API__BASE_URL=self.url,
            AIRFLOW__API__WORKERS="1",
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{self.url}/execution/",
            AIRFLOW__API_AUTH__JWT_SECRET="e2e-jwt-secret-0123456789abcdef0123456789",
            # A new file is found within a second (the folder is listed every second) and a changed
            # file is parsed again at the next loop (files newer than their last parse go first);
            # files that did not change are not parsed again.
            AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="1",
            AIRFLOW__DAG_PROCESSOR__BUNDLE_REFRESH_CHECK_INTERVAL="1",
            AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL="3600",
            AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC="1",
            AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME=f"{self.scheduler_idle_sleep:g}",
            AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT="20",
            AIRFLOW__LOGGING__BASE_LOG_FOLDER=str(self.logs),
            AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL="0",
            AIRFLOW__RESUME__RETRY_SWEEP_INTERVAL="2",
        )
        if self.team_dag_sources:
            members = [
                f"{user}:user:{team}" for user, team in TEAM_USERS.items() if team in self.team_dag_sources
            ]
            env.update(
                AIRFLOW__CORE__MULTI_TEAM="True",
                AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST=json.dumps(self.dag_bundles()),
                AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=",".join(
                    [env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"], *members]
                ),
            )
        if self.pg_db:
            env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = (
                f"postgresql+psycopg2://postgres@127.0.0.1:5432/{self.pg_db}"
            )
        env.update(self.extra_env)
        return env

    def cli(self, *args: str, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [str(BIN / "airflow"), *args], env=self.env(), capture_output=True, text=True, timeout=timeout
        )
        if check and done.returncode != 0:
            raise AssertionError(f"airflow {' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}")
        return done

    # --- DAG files ----------------------------------------------------------------------------------

    def write_dag_file(
        self,
        name: str,
        source: str,
        *,
        dag_ids: tuple[str, ...] | None = None,
        new_version: bool = True,
        timeout: float = 120,
    ) -> None:
        """
        Write ``<dags>/<name>.py`` and wait until Airflow serves it: for each of ``dag_ids`` (default:
        ``name``), the DAG's source is ``source`` (a new DAG version), or, with ``new_version=False``
        (e.g. only a task's code changed, so Airflow keeps the DAG version), the DAG was parsed after
        the write.

        The file is replaced in one step, so the dag-processor never reads half of it. A write that
        lands while the dag-processor parses the old file can look older than that parse: the file is
        touched again every few seconds until the new source shows.
        """
        path = self.dags / f"{name}.py"
        staged = self.home / f".{name}.py.new"
        staged.write_text(source)
        os.replace(staged, path)
        written = time.time()
        last_touch = time.monotonic()

        def served() -> bool:
            nonlocal last_touch
            if time.monotonic() - last_touch > 3:
                os.utime(path)
                last_touch = time.monotonic()
            with self.client() as c:
                for dag_id in dag_ids or (name,):
                    if new_version:
                        resp = c.get(f"/api/v2/dagSources/{dag_id}")
                        if resp.status_code != 200 or resp.json().get("content") != source:
                            return False
                    else:
                        resp = c.get(f"/api/v2/dags/{dag_id}")
                        parsed = resp.status_code == 200 and resp.json().get("last_parsed_time")
                        if not parsed or _timestamp(parsed) <= written:
                            return False
            return True

        wait_for(served, timeout=timeout, interval=0.5, what=f"Airflow serving the new {path.name}")

    # --- components ---------------------------------------------------------------------------------

    def start(self) -> AirflowStack:
        self.home.mkdir(parents=True, exist_ok=True)
        self.dags.mkdir(exist_ok=True)
        for source in self.dag_sources:
            for dag_file in source.glob("*.py"):
                shutil.copy(dag_file, self.dags / dag_file.name)
        (self.home / "passwords.json").write_text(json.dumps(USERS))
        if self.backend == "postgres":
            self.pg_db = f"resume_e2e_{uuid.uuid4().hex[:10]}"
            _pg_admin(f"CREATE DATABASE {self.pg_db}")
        self.cli("db", "migrate")
        if self.team_dag_sources:
            self.create_teams()
        for name, args in self.components():
            self.start_component(name, args)
        _live_stacks.append(self)
        wait_for(self._healthy, timeout=120, what="api-server and scheduler healthy")
        self.warm_execution_api(self.url)
        return self

    def create_teams(self) -> None:
        """
        Copy each team's DAG files into its bundle's folder and add the teams to the metadata DB before the
        dag-processor starts (it refuses a bundle of an unknown team): what ``airflow teams create`` does,
        for all teams in one process instead of one ``airflow`` command (seconds) each.
        """
        for team, source in self.team_dag_sources.items():
            shutil.copytree(source, self.team_dags(team), dirs_exist_ok=True)
        done = subprocess.run(
            [sys.executable, "-c", _CREATE_TEAMS, *self.team_dag_sources],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=180,
        )
        if done.returncode != 0:
            raise AssertionError(f"creating the teams exited {done.returncode}:\n{done.stderr[-3000:]}")

    @staticmethod
    def warm_execution_api(url: str) -> None:
        """
        Make the api-server build its Execution API routes now: it does so on the first request, for
        seconds, and on SQLite inside a write transaction that would lock out the first tasks.
        """
        wait_for(
            lambda: httpx.get(f"{url}/execution/health/ping", timeout=120).status_code == 200,
            timeout=180,
            what=f"the Execution API of {url}",
        )

    def components(self) -> list[tuple[str, list[str]]]:
        """The processes ``start()`` runs: a name and the ``airflow`` arguments of each."""
        return [
            ("api-server", ["api-server"]),
            ("scheduler", ["scheduler"]),
            ("dag-processor", ["dag-processor"]),
            # Runs deferred tasks' triggers. Its log server is off: trigger logs are not read, and
            # stacks side by side would want the same port.
            ("triggerer", ["triggerer", "--skip-serve-logs"]),
        ]

    def component_env(self, name: str) -> dict[str, str]:
        """The environment of one component (the same for all here)."""
        return self.env()

    def start_component(self, name: str, args: list[str]) -> None:
        log = open(self.home / f"{name}.out", "ab")  # noqa: SIM115 - closed with the process
        self.processes[name] = subprocess.Popen(
            [str(BIN / "airflow"), *args],
            env=self.component_env(name),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop_component(self, name: str, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        proc = self.processes.pop(name, None)
        if proc is None:
            return
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=timeout)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def restart(self, *names: str) -> None:
        """
        Stop the named components together and start them again (with the stack's environment as it
        is now); returns once the api-server and a scheduler are healthy and the Execution API answers.
        """
        self._stop_together(names)
        args = dict(self.components())
        for name in names:
            self.start_component(name, args[name])
        wait_for(self._healthy, timeout=300, interval=0.5, what=f"{', '.join(names)} healthy again")
        self.warm_execution_api(self.url)

    def _stop_together(self, names: list[str] | tuple[str, ...], timeout: float = 20) -> None:
        """SIGTERM the named components at once (each takes seconds to stop), then wait for them all."""
        for name in names:
            with contextlib.suppress(ProcessLookupError, KeyError):
                os.killpg(self.processes[name].pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for name in names:
            self.stop_component(name, timeout=max(0.1, deadline - time.monotonic()))

    def check_alive(self) -> None:
        """Fail at once, naming it and showing its last log lines, if a component of the stack exited."""
        for name, proc in list(self.processes.items()):
            code = proc.poll()
            if code is not None:
                self.processes.pop(name, None)
                tail = "\n".join(self.component_log(name).splitlines()[-40:])
                raise ComponentDied(
                    f"the {name} of the test stack exited with {code}; the end of {self.home / name}.out:\n{tail}"
                )

    @contextlib.contextmanager
    def expecting_exit(self, name: str) -> Iterator[subprocess.Popen]:
        """Hand a component over to a test that ends it on purpose: it is no longer watched."""
        proc = self.processes.pop(name)
        yield proc

    def stop(self) -> None:
        """Stop every component at once, end the task processes they leave, drop the database."""
        if self in _live_stacks:
            _live_stacks.remove(self)
        running = self._running_task_ids()
        self._stop_together(list(self.processes))
        self._kill_task_processes(running)
        if self.pg_db:
            try:
                _pg_admin(f"DROP DATABASE IF EXISTS {self.pg_db} WITH (FORCE)")
            except Exception as err:
                print(f"could not drop {self.pg_db}: {err}", file=sys.stderr)

    def _running_task_ids(self) -> set[str]:
        """Ids of task instances that may still have a process (running, or just set to failed by hand)."""
        ids: set[str] = set()
        try:
            with self.client() as c:
                for state in ("running", "failed"):
                    offset = 0
                    while True:
                        body = c.get(
                            "/api/v2/dags/~/dagRuns/~/taskInstances",
                            params={"state": state, "limit": 100, "offset": offset},
                        ).json()
                        ids |= {ti["id"] for ti in body["task_instances"]}
                        offset += 100
                        if offset >= body["total_entries"]:
                            break
        except Exception:
            pass
        return ids

    @staticmethod
    def _kill_task_processes(ti_ids: set[str]) -> None:
        """Task processes outlive their supervisor when it is stopped mid-task: end those still running."""
        import psutil

        titles = {f"airflow worker -- {ti_id}" for ti_id in ti_ids}
        for proc in psutil.process_iter(["cmdline"]):
            if " ".join(proc.info["cmdline"] or []).strip() in titles:
                with contextlib.suppress(psutil.NoSuchProcess):
                    proc.kill()

    def component_log(self, name: str) -> str:
        path = self.home / f"{name}.out"
        return path.read_text(errors="replace") if path.exists() else ""

    def _healthy(self) -> bool:
        try:
            health = httpx.get(f"{self.url}/api/v2/monitor/health", timeout=5).json()
        except (httpx.HTTPError, ValueError):
            return False
        return health.get("scheduler", {}).get("status") == "healthy"

    # --- REST helpers -------------------------------------------------------------------------------

    def token(self, user: str = "admin") -> str:
        if user not in self.tokens:
            resp = httpx.post(
                f"{self.url}/auth/token", json={"username": user, "password": USERS[user]}, timeout=30
            )
            resp.raise_for_status()
            self.tokens[user] = resp.json()["access_token"]
        return self.tokens[user]

    def client(self, user: str | None = "admin") -> httpx.Client:
        return self.client_for(self.url, user)

    def client_for(self, url: str, user: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token(user)}"} if user else {}
        transport = _RetryLockedWrites() if self.backend == "sqlite" else None
        return httpx.Client(base_url=url, headers=headers, timeout=60, transport=transport)

    def wait_for_dag(self, dag_id: str, timeout: float = 120) -> None:
        with self.client() as c:
            wait_for(
                lambda: c.get(f"/api/v2/dags/{dag_id}").status_code == 200,
                timeout=timeout,
                what=f"DAG {dag_id} parsed",
            )

    def trigger(
        self, dag_id: str, conf: dict[str, Any] | None = None, logical_date: str | None = None
    ) -> str:
        self.wait_for_dag(dag_id)
        with self.client() as c:
            resp = c.post(
                f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": logical_date, "conf": conf or {}}
            )
            assert resp.status_code == 200, resp.text
            return resp.json()["dag_run_id"]

    def dag_runs(self, dag_id: str, run_id_prefix: str | None = None) -> list[dict[str, Any]]:
        """Every run of the DAG (all pages), or those whose run id starts with ``run_id_prefix``."""
        runs: list[dict[str, Any]] = []
        with self.client() as c:
            while True:
                body = c.get(
                    f"/api/v2/dags/{dag_id}/dagRuns",
                    params={"limit": 100, "offset": len(runs), "order_by": "id"},
                ).json()
                runs += body["dag_runs"]
                if not body["dag_runs"] or len(runs) >= body["total_entries"]:
                    break
        return [r for r in runs if not run_id_prefix or r["dag_run_id"].startswith(run_id_prefix)]

    def run_state(self, dag_id: str, run_id: str) -> str:
        with self.client() as c:
            return c.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}").json()["state"]

    def wait_for_run(
        self, dag_id: str, run_id: str, states=("success", "failed"), timeout: float = 180
    ) -> str:
        return wait_for(
            lambda: (s := self.run_state(dag_id, run_id)) in states and s,
            timeout=timeout,
            interval=0.5,
            what=f"run {run_id} in {states}",
        )

    def note(self, dag_id: str, run_id: str) -> str:
        with self.client() as c:
            return c.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}").json().get("note") or ""

    def run_exists(self, dag_id: str, run_id: str) -> bool:
        with self.client() as c:
            return c.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}").status_code == 200

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
        with self.client() as c:
            body = c.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances").json()
        return {ti["task_id"]: ti for ti in body["task_instances"]}

    def fail_by_hand(self, dag_id: str, run_id: str, task_id: str) -> None:
        """Wait until ``task_id`` runs, then set it to failed through the REST API, as a person would."""
        wait_for(
            lambda: self.task_instances(dag_id, run_id).get(task_id, {}).get("state") == "running",
            timeout=120,
            what=f"{task_id} running",
        )
        with self.client() as c:
            resp = c.patch(
                f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}",
                json={"new_state": "failed"},
            )
            assert resp.status_code == 200, resp.text

    # --- Variables ----------------------------------------------------------------------------------

    def set_variable(self, key: str, value: str) -> None:
        with self.client() as c:
            resp = c.patch(f"/api/v2/variables/{key}", json={"key": key, "value": value})
            if resp.status_code == 404:
                resp = c.post("/api/v2/variables", json={"key": key, "value": value})
            assert resp.status_code in (200, 201), resp.text

    def get_variable(self, key: str) -> str | None:
        with self.client() as c:
            resp = c.get(f"/api/v2/variables/{key}")
        if resp.status_code == 404:
            return None
        assert resp.status_code == 200, resp.text
        return resp.json()["value"]

    def delete_variable(self, key: str) -> None:
        with self.client() as c:
            resp = c.delete(f"/api/v2/variables/{key}")
        assert resp.status_code in (204, 404), resp.text

    @contextlib.contextmanager
    def variables_from(self, values: dict[str, str]) -> Iterator[None]:
        """Set Variables for the block; afterwards each has its earlier value again (or none)."""
        before = {key: self.get_variable(key) for key in values}
        try:
            for key, value in values.items():
                self.set_variable(key, value)
            yield
        finally:
            for key, value in before.items():
                if value is None:
                    self.delete_variable(key)
                else:
                    self.set_variable(key, value)

    def variables(self, **values: str) -> contextlib.AbstractContextManager[None]:
        return self.variables_from(values)


def _timestamp(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _pg_admin(sql: str) -> None:
    import psycopg2

    conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="test")
    conn.autocommit = True
    try:
        conn.cursor().execute(sql)
    finally:
        conn.close()

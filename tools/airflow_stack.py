"""
A real local Airflow: api-server, scheduler and dag-processor as separate processes, on a fresh
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
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
#: Users of the local stack and their passwords; ``auditor`` has the role viewer (see ``env()``).
USERS = {"admin": "admin-pw", "viewer": "viewer-pw", "operator": "operator-pw", "auditor": "auditor-pw"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, *, timeout: float, interval: float = 0.5, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    raise TimeoutError(f"{what} not reached within {timeout:.0f}s (last: {last!r})")


@dataclass
class AirflowStack:
    home: Path
    backend: str = "sqlite"
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    dag_sources: tuple[Path, ...] = (REPO / "example_dags", REPO / "tests" / "dags")
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    pg_db: str | None = None
    #: boto3 S3 client of the remote log bucket, when the stack logs to S3.
    s3: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def dags(self) -> Path:
        return self.home / "dags"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

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
            AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="3",
            AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL="3",
            AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC="1",
            AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT="20",
            AIRFLOW__LOGGING__BASE_LOG_FOLDER=str(self.logs),
            AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL="0",
            AIRFLOW__RESUME__RETRY_SWEEP_INTERVAL="3",
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

    def reserialize(self, timeout: float = 600) -> None:
        """Parse the DAG folder into the metadata DB now, instead of waiting for the dag-processor.

        The dag-processor is stopped meanwhile. A DAG file new to both this command and a running
        dag-processor would be inserted by both at once; the loser fails on the ``dag`` table's unique
        key, and a dag-processor that loses exits. That race is Airflow's, not the provider's. It is
        killed, not asked to stop (that takes 5 s): it parses everything again when it starts.
        """
        args = dict(self.components())["dag-processor"]
        self.stop_component("dag-processor", sig=signal.SIGKILL)
        try:
            self.cli("dags", "reserialize", timeout=timeout)
        finally:
            self.start_component("dag-processor", args)

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
        for name, args in self.components():
            self.start_component(name, args)
        wait_for(self._healthy, timeout=120, what="api-server and scheduler healthy")
        return self

    def components(self) -> list[tuple[str, list[str]]]:
        """The processes ``start()`` runs: a name and the ``airflow`` arguments of each."""
        return [
            ("api-server", ["api-server"]),
            ("scheduler", ["scheduler"]),
            ("dag-processor", ["dag-processor"]),
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

    def stop(self) -> None:
        running = self._running_task_ids()
        for name in list(self.processes):
            self.stop_component(name)
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
        resp = httpx.post(
            f"{self.url}/auth/token", json={"username": user, "password": USERS[user]}, timeout=30
        )
        resp.raise_for_status()
        return resp.json()["access_token"]

    def client(self, user: str | None = "admin") -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token(user)}"} if user else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

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

    def run_state(self, dag_id: str, run_id: str) -> str:
        with self.client() as c:
            return c.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}").json()["state"]

    def wait_for_run(
        self, dag_id: str, run_id: str, states=("success", "failed"), timeout: float = 180
    ) -> str:
        return wait_for(
            lambda: (s := self.run_state(dag_id, run_id)) in states and s,
            timeout=timeout,
            interval=1,
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

    def set_variable(self, key: str, value: str) -> None:
        with self.client() as c:
            resp = c.patch(f"/api/v2/variables/{key}", json={"key": key, "value": value})
            if resp.status_code == 404:
                resp = c.post("/api/v2/variables", json={"key": key, "value": value})
            assert resp.status_code in (200, 201), resp.text


def _pg_admin(sql: str) -> None:
    import psycopg2

    conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="test")
    conn.autocommit = True
    try:
        conn.cursor().execute(sql)
    finally:
        conn.close()

"""
A local Airflow cluster in Airflow's HA shape, built on :class:`tools.airflow_stack.AirflowStack`:
two api-servers, two schedulers, one dag-processor and two Celery workers (CeleryExecutor, Redis
broker, PostgreSQL metadata DB and result backend), remote logging to S3.

Each worker has its own local log folder and its own api-server for the Execution API, so nothing
a worker writes locally is seen by another component: task state can only travel through S3.
Every component reports its own host name (``hostname_callable``), so task instances and scheduler
jobs say which process they ran on.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx

from tools.airflow_stack import AirflowStack, free_port, wait_for

#: The environment variable that :func:`hostname` reports; set per component.
HOSTNAME_VAR = "RESUME_CLUSTER_HOSTNAME"
#: Redis database of the cluster tests' broker (each run also has its own queue in it).
REDIS_DB = 7
REDIS = "redis://127.0.0.1:6379"

API_SERVERS = ("api-server", "api-server-2")
SCHEDULERS = ("scheduler", "scheduler-2")
WORKERS = ("w1", "w2")


def hostname() -> str:
    """``[core] hostname_callable`` of the cluster: the component's name, else the machine's."""
    from airflow.utils.net import getfqdn

    return os.environ.get(HOSTNAME_VAR) or getfqdn()


@dataclass
class ClusterStack(AirflowStack):
    backend: str = "postgres"
    port2: int = field(default_factory=free_port)
    #: This run's Celery queue: runs sharing the Redis database never take each other's tasks.
    queue: str = field(default_factory=lambda: f"resume_cluster_{uuid.uuid4().hex[:10]}")
    #: Where each component's output file stood when it was last started.
    log_starts: dict[str, int] = field(default_factory=dict)

    @property
    def url2(self) -> str:
        return f"http://127.0.0.1:{self.port2}"

    def api_url(self, api: int) -> str:
        return self.url if api == 1 else self.url2

    def worker_logs(self, worker: str) -> str:
        return str(self.home / f"{worker}-logs")

    def components(self) -> list[tuple[str, list[str]]]:
        return [
            *((name, ["api-server"]) for name in API_SERVERS),
            *((name, ["scheduler"]) for name in SCHEDULERS),
            ("dag-processor", ["dag-processor"]),
            *((name, self.worker_args(name)) for name in WORKERS),
        ]

    def worker_args(self, worker: str) -> list[str]:
        # Celery node names are unique per run (a second worker named like a live one refuses to
        # start); no log server: logs are read from S3, and two workers would want the same port.
        return [
            *("celery", "worker", "-H", f"{worker}@{self.queue}", "--concurrency", "1"),
            *("--queues", self.queue, "--skip-serve-logs", "--pid", str(self.home / f"{worker}.pid")),
        ]

    def env(self) -> dict[str, str]:
        env = super().env()
        env.update(
            AIRFLOW__CORE__EXECUTOR="CeleryExecutor",
            AIRFLOW__CORE__HOSTNAME_CALLABLE="tools.cluster_stack.hostname",
            AIRFLOW__OPERATORS__DEFAULT_QUEUE=self.queue,
            AIRFLOW__CELERY__BROKER_URL=f"{REDIS}/{REDIS_DB}",
            AIRFLOW__CELERY__WORKER_CONCURRENCY="1",
            AIRFLOW__CELERY__SYNC_PARALLELISM="1",
            # A worker killed mid-task is noticed quickly (its task's heartbeats stop).
            AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT="15",
            AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL="2",
        )
        if self.pg_db:
            env["AIRFLOW__CELERY__RESULT_BACKEND"] = (
                f"db+postgresql+psycopg2://postgres@127.0.0.1:5432/{self.pg_db}"
            )
        return env

    def component_env(self, name: str) -> dict[str, str]:
        env = self.env()
        env[HOSTNAME_VAR] = name
        if name == "api-server-2":
            env.update(AIRFLOW__API__PORT=str(self.port2), AIRFLOW__API__BASE_URL=self.url2)
        if name in WORKERS:
            # Its own local log folder; w1 talks to the first api-server, w2 to the second.
            api = self.api_url(WORKERS.index(name) + 1)
            env.update(
                AIRFLOW__LOGGING__BASE_LOG_FOLDER=self.worker_logs(name),
                AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{api}/execution/",
            )
        return env

    def start(self) -> ClusterStack:
        super().start()  # returns once the first api-server and a scheduler are healthy
        wait_for(self.ready, timeout=300, what="both api-servers and both Celery workers ready")
        return self

    def ready(self) -> bool:
        """Whether both api-servers answer (Execution API included) and both workers are ready."""

        def up(url: str) -> bool:
            try:
                health = httpx.get(f"{url}/api/v2/monitor/health", timeout=5).json()
                # The Execution API builds its versioned routes on its first request (20-30 s here,
                # blocking the server): done here, not in the first task of a test.
                ping = httpx.get(f"{url}/execution/health/ping", timeout=120)
            except (httpx.HTTPError, ValueError):
                return False
            return health.get("scheduler", {}).get("status") == "healthy" and ping.status_code == 200

        with ThreadPoolExecutor(max_workers=2) as pool:  # the two servers warm up side by side
            servers_up = all(pool.map(up, (self.url, self.url2)))
        return servers_up and all(self.worker_ready(w) for w in WORKERS)

    def start_component(self, name: str, args: list[str]) -> None:
        self.log_starts[name] = len(self.component_log(name))
        super().start_component(name, args)

    def log_since_start(self, name: str) -> str:
        """What the component logged since it was last started."""
        return self.component_log(name)[self.log_starts.get(name, 0) :]

    def worker_ready(self, worker: str) -> bool:
        """Whether the worker runs and its Celery node said it is ready."""
        proc = self.processes.get(worker)
        alive = proc is not None and proc.poll() is None
        return alive and f"{worker}@{self.queue} ready." in self.log_since_start(worker)

    def client(self, user: str | None = "admin", api: int = 1) -> httpx.Client:
        return self.client_for(self.api_url(api), user)

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            self._forget_queue()

    def _forget_queue(self) -> None:
        """
        Remove this run's queue from the shared Redis database, with the tasks a killed worker left
        unacknowledged (the broker would hand them back to the queue a day later).
        """
        import redis

        try:
            client = redis.Redis.from_url(f"{REDIS}/{REDIS_DB}")
            client.delete(self.queue, f"_kombu.binding.{self.queue}")
            for tag, raw in client.hgetall("unacked").items():
                with contextlib.suppress(ValueError, TypeError):
                    _message, _exchange, routing_key = json.loads(raw)
                    if routing_key == self.queue:
                        client.hdel("unacked", tag)
                        client.zrem("unacked_index", tag)
            client.close()
        except redis.RedisError:
            pass

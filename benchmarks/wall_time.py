"""
Wall time of a 20-task linear DAG with the provider's capture on vs off, on a real Airflow.

A real api-server + scheduler + dag-processor (``tools.airflow_stack.AirflowStack``: SQLite,
LocalExecutor) loads two generated DAGs with the same 20 tasks (each sleeps ``--task-seconds``,
default 1 s, and returns a 1 KB string): ``bench_wall_on`` with ``params={"resume": True}`` and
``bench_wall_off`` with ``params={"resume": False}``. Runs alternate off/on, one at a time, ``--repeats``
times each (default 3); a run's wall time is its ``end_date - start_date`` from the REST API. Reports
medians and the overhead of capture in percent and in milliseconds per task.

Run from the repository root (about 6 minutes on 2 cores)::

    .venv/bin/python benchmarks/wall_time.py
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tools.airflow_stack import AirflowStack  # noqa: E402
from tools.machine import machine_facts  # noqa: E402

RESULTS_FILE = REPO / "benchmarks" / "results" / "wall_time.json"
TASKS = 20

DAG_FILE = """
import time

from airflow.sdk import DAG, chain, task


def make(dag_id, resume, seconds):
    with DAG(dag_id, schedule=None, params={{"resume": resume}}, max_active_runs=1) as dag:
        steps = []
        for i in range({tasks}):

            @task(task_id=f"step_{{i:02d}}")
            def step():
                time.sleep(seconds)
                return "x" * 1024

            steps.append(step())
        chain(*steps)
    return dag


make("bench_wall_on", True, {seconds})
make("bench_wall_off", False, {seconds})
"""


def run_seconds(stack: AirflowStack, dag_id: str) -> float:
    run_id = stack.trigger(dag_id)
    state = stack.wait_for_run(dag_id, run_id, timeout=600)
    if state != "success":
        raise RuntimeError(f"{dag_id} run {run_id} ended {state}; see {stack.home}")
    with stack.client() as client:
        run = client.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}").json()
    start = datetime.fromisoformat(run["start_date"])
    end = datetime.fromisoformat(run["end_date"])
    return (end - start).total_seconds()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--task-seconds", type=float, default=1.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="resume-bench-wall-") as tmp:
        dags = Path(tmp) / "dag-source"
        dags.mkdir()
        (dags / "bench_wall.py").write_text(DAG_FILE.format(tasks=TASKS, seconds=args.task_seconds))
        stack = AirflowStack(home=Path(tmp) / "home", dag_sources=(dags,))
        stack.start()
        try:
            stack.wait_for_dag("bench_wall_on")
            stack.wait_for_dag("bench_wall_off")
            times: dict[str, list[float]] = {"bench_wall_off": [], "bench_wall_on": []}
            run_seconds(stack, "bench_wall_off")  # warm-up, not counted
            for _ in range(args.repeats):
                for dag_id in ("bench_wall_off", "bench_wall_on"):
                    times[dag_id].append(run_seconds(stack, dag_id))
        finally:
            stack.stop()

    off = statistics.median(times["bench_wall_off"])
    on = statistics.median(times["bench_wall_on"])
    result = {
        "tasks": TASKS,
        "task_seconds": args.task_seconds,
        "repeats": args.repeats,
        "runs_seconds": times,
        "median_off_s": round(off, 3),
        "median_on_s": round(on, 3),
        "overhead_percent": round(100 * (on - off) / off, 2),
        "overhead_ms_per_task": round(1000 * (on - off) / TASKS, 1),
        "machine": machine_facts("sqlite", "LocalExecutor"),
    }
    print("| 20-task DAG, real scheduler | resume off | resume on | overhead |")
    print("|---|---:|---:|---:|")
    print(
        f"| wall time, median of {args.repeats} (s) | {off:.2f} | {on:.2f} | "
        f"{result['overhead_percent']:+.1f}% ({result['overhead_ms_per_task']:+.0f} ms/task) |"
    )
    print(f"runs: {json.dumps(times)}")
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

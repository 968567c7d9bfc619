"""
Quickstart: a local Airflow (SQLite, LocalExecutor) running the example DAG ``resume_example_etl``.

1. The DAG runs and fails at ``transform`` (its "bug": the Variable ``resume_example_fail`` is true).
2. The resume verdict is shown: resumable at ``transform``; ``extract`` will be restored, not re-run.
3. The bug is fixed (the Variable is set to false) and the run is resumed through the REST API.
4. The resumed run succeeds; ``extract`` ran once in total.

``--keep-running`` leaves Airflow up afterwards, with a second failed run to resume from the UI.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tools.airflow_stack import USERS, AirflowStack  # noqa: E402

DAG_ID = "resume_example_etl"


def say(message: str) -> None:
    print(f"\n==> {message}", flush=True)


def _stop_on_signals() -> None:
    """Ctrl+C or SIGTERM stop Airflow, also when started in the background (where SIGINT is ignored)."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--keep-running", action="store_true", help="leave Airflow running at the end")
    parser.add_argument("--port", type=int, default=int(os.environ.get("QUICKSTART_PORT", "8080")))
    args = parser.parse_args()

    home = REPO / ".quickstart" / "airflow-home"
    shutil.rmtree(home, ignore_errors=True)
    stack = AirflowStack(home=home, port=args.port, dag_sources=(REPO / "example_dags",))
    say(f"Starting Airflow (api-server, scheduler, dag-processor) in {home} on {stack.url} ...")
    stack.start()
    try:
        stack.set_variable("resume_example_fail", "true")
        run_id = stack.trigger(DAG_ID)
        say(f"Triggered {DAG_ID} run {run_id}; waiting for it to finish ...")
        state = stack.wait_for_run(DAG_ID, run_id)
        print(f"run {run_id}: {state}")
        if state != "failed":
            raise SystemExit("expected the first run to fail at 'transform'")

        say(f"airflow resume status {DAG_ID} {run_id}")
        print(stack.cli("resume", "status", DAG_ID, run_id, check=False).stdout)

        say("Fixing the bug: airflow variables set resume_example_fail false")
        stack.set_variable("resume_example_fail", "false")

        say(f"Resuming: POST /resume/api/v1/dags/{DAG_ID}/dagRuns/{run_id}/resume")
        with stack.client() as client:
            resp = client.post(f"/resume/api/v1/dags/{DAG_ID}/dagRuns/{run_id}/resume")
        print(resp.status_code, resp.json())
        resp.raise_for_status()
        new_run = resp.json()["dag_run_id"]

        state = stack.wait_for_run(DAG_ID, new_run)
        print(f"resumed run {new_run}: {state}")
        for task_id, ti in stack.task_instances(DAG_ID, new_run).items():
            how = "restored, not run" if ti["try_number"] == 0 else f"ran (try {ti['try_number']})"
            print(f"  {task_id:<10} {ti['state']:<8} {how}")
        if state != "success":
            raise SystemExit("the resumed run did not succeed; see the logs under " + str(home))
        say("Done: the failed run was resumed at 'transform' and succeeded; 'extract' ran once in total.")

        if args.keep_running:
            stack.set_variable("resume_example_fail", "true")
            ui_run = stack.trigger(DAG_ID)
            stack.wait_for_run(DAG_ID, ui_run)
            stack.set_variable("resume_example_fail", "false")
            say(
                f"Airflow keeps running at {stack.url} (user admin, password {USERS['admin']}).\n"
                f"    Run {ui_run} failed: open it, choose the 'Resume' tab and press Resume.\n"
                "    Press Ctrl+C to stop."
            )
            _stop_on_signals()
            try:
                while True:
                    stack.processes["api-server"].wait()
            except KeyboardInterrupt:
                pass
        return 0
    finally:
        say("Stopping Airflow ...")
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())

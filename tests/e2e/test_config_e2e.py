"""
Bad ``[resume]`` options on a real api-server and scheduler: never a 500, a crash loop or a task failure.

The api-server and the scheduler are restarted with four bad values at once: ``retention_days = -1``,
``retry_sweep_interval = 0`` and ``capture_timeout = abc`` fall back to their defaults (the verdict lists
them in ``warnings``), while ``state_folder`` on a log backend that cannot hold files (CloudWatch)
protects data, so what needs it refuses, naming the option and the fix. Each component logs each problem once, and ``airflow resume check``
exits 1 naming every option and what it accepts.
"""

from __future__ import annotations

import pytest

from tests.e2e.runs import API, chain_runs, q, restarted_with, verdict, wait_for_note
from tools.airflow_stack import stays

pytestmark = pytest.mark.e2e

ETL = "resume_example_etl"
RETRY_ONE = "resume_test_retry_one"

BAD = {
    "AIRFLOW__RESUME__RETENTION_DAYS": "-1",
    "AIRFLOW__RESUME__RETRY_SWEEP_INTERVAL": "0",
    "AIRFLOW__RESUME__CAPTURE_TIMEOUT": "abc",
    "AIRFLOW__RESUME__STATE_FOLDER": "cloudwatch://arn:aws:logs:us-east-1:123456789012:log-group:airflow",
}
FALLBACKS = {
    "[resume] capture_timeout = 'abc' is not valid: a number of seconds greater than 0 is accepted; the "
    "default 10 is used instead",
    "[resume] retry_sweep_interval = '0' is not valid: a number of seconds greater than 0 is accepted; the "
    "default 60 is used instead",
    "[resume] retention_days = '-1' is not valid: a whole number of days from 0 (keep state forever) to "
    "36500 is accepted; the default 30 is used instead",
}
FOLDER_PROBLEM = (
    "[resume] state_folder = 'cloudwatch://arn:aws:logs:us-east-1:123456789012:log-group:airflow' is not "
    "valid: 'cloudwatch' is not a storage Airflow knows, so it cannot hold files"
)


def test_bad_options_never_break_a_task_a_route_or_the_scheduler(stack, tmp_path):
    logged_before = {name: len(stack.component_log(name)) for name in ("api-server", "scheduler")}
    with (
        stack.variables_from(
            {
                "resume_test_ledger_dir": str(tmp_path),
                f"{RETRY_ONE}_failures": "1",
                "resume_example_fail": "true",
            }
        ),
        restarted_with(stack, BAD),
    ):
        # Tasks run and end as they would without the provider: extract succeeds, transform fails by itself.
        run_id = stack.trigger(ETL)
        assert stack.wait_for_run(ETL, run_id) == "failed"
        states = {task: ti["state"] for task, ti in stack.task_instances(ETL, run_id).items()}
        assert states == {"extract": "success", "transform": "failed", "load": "upstream_failed"}

        # The verdict answers (no 500): the state was not recorded because of the option that protects
        # data, which it names; the options that fell back are listed.
        body = verdict(stack, ETL, run_id)
        assert (body["resumable"], body["reason_code"]) == (False, "state_not_recorded"), body
        assert FOLDER_PROBLEM in body["reason"], body["reason"]
        assert set(body["warnings"]) == FALLBACKS, body["warnings"]
        with stack.client() as c:
            refused = c.post(f"{API}/dags/{ETL}/dagRuns/{q(run_id)}/resume")
            page = c.get(f"/resume/ui/dags/{ETL}/dagRuns/{q(run_id)}")
            tab = c.get(f"/resume/ui/dags/{ETL}")
        assert (refused.status_code, refused.json()["reason_code"]) == (409, "state_not_recorded")
        assert FOLDER_PROBLEM in refused.json()["detail"]
        assert page.status_code == 200 and "state_not_recorded" in page.text
        assert tab.status_code == 200 and "could not be assessed" not in tab.text
        assert "state_not_recorded" in tab.text

        # The retry worker decides (and says why it does not retry) and stays up: no restart loop.
        root = stack.trigger(RETRY_ONE)
        assert stack.wait_for_run(RETRY_ONE, root) == "failed"
        note = wait_for_note(stack, RETRY_ONE, root, "Not retried", "Retried automatically")
        assert note.startswith("Not retried: ") and "[resume] state_folder" in note, note
        stays(
            lambda: (
                stack.check_alive() is None
                and "The resume retry worker" not in stack.component_log("scheduler")
            ),
            seconds=8,
            what="the scheduler and its retry worker running",
        )
        assert chain_runs(stack, RETRY_ONE, root) == {}

        # Each problem was logged when the components started: once by the api-server, which has
        # answered many requests with these options since, and by the scheduler.
        for component, times in (("api-server", [1]), ("scheduler", [1, 2, 3])):
            text = stack.component_log(component)[logged_before[component] :]
            warnings = [line for line in text.splitlines() if "[airflow_resume_provider.conf]" in line]
            for problem in (*FALLBACKS, FOLDER_PROBLEM):
                head = problem.split(" is not valid")[0] + " is not valid"
                logged = sum(head in line for line in warnings)
                assert logged in times, (component, head, warnings)

        check = stack.cli("resume", "check", check=False)
        output = check.stdout + check.stderr
        assert check.returncode == 1, output[-3000:]
        for problem in (*FALLBACKS, FOLDER_PROBLEM):
            assert problem in output, (problem, output[-3000:])
        assert "Traceback" not in output, output[-3000:]

    fixed = stack.cli("resume", "check", check=False)
    assert fixed.returncode == 0, (fixed.stdout + fixed.stderr)[-3000:]

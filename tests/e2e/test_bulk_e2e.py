"""Bulk resume against a real api-server, scheduler and dag-processor: REST route and the DAG's Resume tab."""

from __future__ import annotations

import html
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from tests.e2e.runs import q
from tools.airflow_stack import wait_for

pytestmark = pytest.mark.e2e

DAG_ID = "resume_example_etl"
BULK = f"/resume/api/v1/dags/{DAG_ID}/dagRuns/resume"


def failed_runs(stack, n: int) -> list[str]:
    """``n`` failed runs, each ended before the next starts: the list is oldest first by any measure (the
    scheduler may start runs queued together in either order)."""
    run_ids = []
    with stack.variables(resume_example_fail="true"):
        for _ in range(n):
            run_ids.append(stack.trigger(DAG_ID))
            assert stack.wait_for_run(DAG_ID, run_ids[-1]) == "failed"
    return run_ids


def wait_until_no_run_is_going(stack) -> None:
    """Wait until every run of the DAG (another test's too) has ended: one failing later would be
    counted by a test that counts failed runs."""
    wait_for(
        lambda: all(r["state"] not in ("queued", "running") for r in stack.dag_runs(DAG_ID)),
        timeout=300,
        interval=1,
        what=f"every run of {DAG_ID} ended",
    )


def dag_page(stack, dag_id: str = DAG_ID, user: str | None = "admin", **params) -> httpx.Response:
    cookies = {"_token": stack.token(user)} if user else {}
    return httpx.get(f"{stack.url}/resume/ui/dags/{q(dag_id)}", cookies=cookies, params=params, timeout=120)


def test_bulk_resume_by_window_with_a_dry_run_for_readers_and_resume_for_triggerers(stack):
    wait_until_no_run_is_going(stack)
    since = (datetime.now(timezone.utc) - timedelta(seconds=1)).isoformat()
    runs = failed_runs(stack, 3)
    window = {"state": "failed", "since": since}

    with stack.client("viewer") as viewer:
        preview = viewer.post(BULK, json={**window, "dry_run": True})
        assert preview.status_code == 200, preview.text
        body = preview.json()
        assert (body["total"], body["dry_run"]) == (3, True)
        # Oldest end first; the three ran side by side, so their end order is the scheduler's.
        assert sorted((r["dag_run_id"], r["status"], r["resume_task_id"]) for r in body["results"]) == sorted(
            (run_id, "would_resume", "transform") for run_id in runs
        )
        refused = viewer.post(BULK, json=window)
        assert refused.status_code == 403
        assert "needs permission to trigger its runs; a dry run does not" in refused.json()["detail"]
    assert not any(stack.run_exists(DAG_ID, f"resume__{r}__1") for r in runs)

    # The session cookie alone (a forged cross-site form) is refused without the page's CSRF token.
    forged = httpx.post(stack.url + BULK, json=window, cookies={"_token": stack.token("admin")}, timeout=60)
    assert forged.status_code == 403
    assert "X-Resume-CSRF-Token" in forged.json()["detail"]

    # The fix is in before the resume: the resumed runs succeed.
    with stack.variables(resume_example_fail="false"):
        with stack.client("admin") as admin:
            done = admin.post(BULK, json=window)
            assert done.status_code == 200, done.text
            results = done.json()["results"]
            assert sorted((r["dag_run_id"], r["status"]) for r in results) == [
                (run_id, "created") for run_id in sorted(runs)
            ]
            order = [r["dag_run_id"] for r in results]
            again = admin.post(BULK, json={"dag_run_ids": [*order, "no_such_run"]}).json()["results"]
            assert [(r["status"], r["new_dag_run_id"]) for r in again[:3]] == [
                ("existing", r["new_dag_run_id"]) for r in results
            ]
            assert (again[3]["status"], again[3]["reason_code"]) == ("refused", "run_not_found")

            log = admin.get(
                "/api/v2/eventLogs", params={"event": "resume_dag_runs", "dag_id": DAG_ID, "after": since}
            ).json()
            assert {"admin", "viewer"} <= {entry["owner"] for entry in log["event_logs"]}

        for result in results:
            assert stack.wait_for_run(DAG_ID, result["new_dag_run_id"]) == "success"
            tis = stack.task_instances(DAG_ID, result["new_dag_run_id"])
            assert tis["extract"]["try_number"] == 0  # restored, not run again


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"dag_run_ids": [f"run_{i}" for i in range(101)]}, 422, "at most 100"),
        ({"dag_run_ids": ["a"], "state": "failed"}, 422, "give either dag_run_ids or state"),
        ({"dry_run": True}, 422, 'give dag_run_ids, or state "failed"'),
        ({"state": "success"}, 422, "failed"),
        ({"state": "failed", "since": "2026-11-02", "until": "2026-11-01"}, 422, "since is after until"),
        ({"dag_run_ids": [], "dry_run": True}, 422, "at least 1"),
    ],
)
def test_malformed_bulk_requests_get_422_saying_what(stack, body, status, detail):
    with stack.client() as c:
        resp = c.post(BULK, json=body)
    assert resp.status_code == status, resp.text
    errors = resp.json()["detail"]
    assert any(detail in e["msg"] for e in errors), errors


def test_bulk_on_an_unknown_dag_is_404_and_unauthenticated_is_401(stack):
    with stack.client() as c:
        resp = c.post(
            "/resume/api/v1/dags/no_such_dag/dagRuns/resume", json={"state": "failed", "dry_run": True}
        )
    assert resp.status_code == 404
    assert "DAG 'no_such_dag' not found." in resp.json()["detail"]
    assert httpx.post(stack.url + BULK, json={"state": "failed"}, timeout=60).status_code == 401


def test_dag_tab_lists_failed_runs_newest_first_with_verdicts(stack):
    runs = failed_runs(stack, 2)
    resp = dag_page(stack)
    assert resp.status_code == 200
    text = resp.text
    # The two ran side by side: "newest" is by when each ended, not by when it was triggered.
    with stack.client() as c:
        ended = {r: c.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{q(r)}").json()["end_date"] for r in runs}
    older, newest = sorted(runs, key=lambda r: ended[r])
    assert text.index(f'data-run="{html.escape(newest)}"') < text.index(f'data-run="{html.escape(older)}"')
    assert f'value="{html.escape(newest)}"' in text  # a checkbox to select it
    assert 'data-status="resumable"' in text and "Resumable</span> at <code>transform</code>" in text
    assert 'id="resume-btn"' in text and '"csrf_token": "' in text and '"csrf_token": ""' not in text
    assert f"/resume/api/v1/dags/{DAG_ID}/dagRuns/resume" in text

    viewer = dag_page(stack, user="viewer")
    assert viewer.status_code == 200
    assert 'id="read-only"' in viewer.text and 'id="resume-btn"' not in viewer.text
    assert 'id="preview-btn"' in viewer.text  # a dry run needs only read access

    assert dag_page(stack, user=None).status_code == 401
    unknown = dag_page(stack, "no_such_dag")
    assert unknown.status_code == 404 and "DAG &#39;no_such_dag&#39; not found." in unknown.text

    none = dag_page(stack, "resume_test_not_opted_in")
    assert none.status_code == 200 and 'id="none"' in none.text


def test_dag_tab_pages_through_failed_runs(stack):
    wait_until_no_run_is_going(stack)
    failed_runs(stack, 2)
    first = dag_page(stack, limit=1).text
    total = int(first.split('id="summary">', 1)[1].split(" ", 1)[0])
    assert total >= 2
    assert 'id="older"' in first and 'id="newer"' not in first
    assert f"Runs 1 to 1 of {total}" in first
    second = dag_page(stack, offset=1, limit=1).text
    assert 'id="newer"' in second and f"Runs 2 to 2 of {total}" in second
    assert second.count('data-status="') == first.count('data-status="') == 1
    assert 'data-run="' in second and second.split('data-run="')[1] != first.split('data-run="')[1]
    last = dag_page(stack, offset=total - 1, limit=1).text
    assert 'id="older"' not in last
    assert dag_page(stack, offset=-1).status_code == 422
    assert dag_page(stack, limit=101).status_code == 422

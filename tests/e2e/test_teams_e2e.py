"""
Teams (``[core] multi_team``) on the shared stack: the provider asks the auth manager about a DAG with
the DAG's team, as Airflow's own routes do, on every route.

The stack's teams ``team_a`` and ``team_b`` each own a DAG bundle with one DAG (``tests/dags/teams``).
``alice`` is a member of ``team_a`` as SimpleAuthManager knows one: nothing of ``team_b``'s DAGs.
``carol``, also of ``team_a``, may read every team's runs but trigger runs and read XComs only of her
own team's DAGs (``tests.auth_manager.StackAuthManager``): the user a team-blind check let resume
another team's runs through the bulk route.
"""

from __future__ import annotations

import html
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from tests.e2e.runs import API, q, resume_runs

pytestmark = pytest.mark.e2e

OWN = "resume_test_team_a"  # team_a's DAG
OTHER = "resume_test_team_b"  # team_b's DAG
XCOM_HIDDEN = "Values hidden: your role may not read this DAG's XComs."


@pytest.fixture(scope="module")
def runs(stack) -> dict[str, str]:
    """
    Failed, resumable runs, started side by side: ``a1`` and ``a2`` of team A's DAG, ``b`` of team B's;
    ``since`` is a moment before them all (no other runs of these DAGs exist).
    """
    since = (datetime.now(timezone.utc) - timedelta(seconds=1)).isoformat()
    found = {"a1": stack.trigger(OWN), "a2": stack.trigger(OWN), "b": stack.trigger(OTHER)}
    for name, run_id in found.items():
        assert stack.wait_for_run(OTHER if name == "b" else OWN, run_id) == "failed"
    with stack.client() as admin:
        verdict = admin.get(f"{API}/dags/{OTHER}/dagRuns/{q(found['b'])}").json()
    assert verdict["resumable"], verdict  # so only a permission check stands between it and a resume
    return {**found, "since": since}


def resume_url(dag_id: str, run_id: str) -> str:
    return f"{API}/dags/{dag_id}/dagRuns/{q(run_id)}/resume"


def bulk_url(dag_id: str) -> str:
    return f"{API}/dags/{dag_id}/dagRuns/resume"


def ui(stack, path: str, user: str) -> httpx.Response:
    """A page of the provider as the Resume tab loads it, with the user's session cookie."""
    return httpx.get(f"{stack.url}/resume/ui/{path}", cookies={"_token": stack.token(user)}, timeout=120)


def test_a_team_member_cannot_read_preview_or_resume_another_teams_runs(stack, runs):
    run_id = runs["b"]
    with stack.client("alice") as alice:
        assert alice.get(f"/api/v2/dags/{OTHER}/dagRuns/{q(run_id)}").status_code == 403  # Airflow's own
        assert alice.get(f"{API}/dags/{OTHER}/dagRuns/{q(run_id)}").status_code == 403
        assert alice.post(resume_url(OTHER, run_id)).status_code == 403
        for selection in ({"dag_run_ids": [run_id]}, {"state": "failed", "since": runs["since"]}):
            for dry_run in (True, False):
                resp = alice.post(bulk_url(OTHER), json={**selection, "dry_run": dry_run})
                assert resp.status_code == 403, (selection, dry_run, resp.text)
    assert ui(stack, f"dags/{OTHER}/dagRuns/{q(run_id)}", "alice").status_code == 403
    assert ui(stack, f"dags/{OTHER}", "alice").status_code == 403
    assert resume_runs(stack, OTHER, run_id) == []


def test_a_reader_of_every_team_cannot_resume_or_see_the_xcoms_of_another_team(stack, runs):
    run_id = runs["b"]
    with stack.client("carol") as carol:
        # What Airflow itself lets her do with team B's DAG: read its runs, not its XComs, no trigger.
        assert carol.get(f"/api/v2/dags/{OTHER}/dagRuns/{q(run_id)}").status_code == 200
        xcoms = f"/api/v2/dags/{OTHER}/dagRuns/{q(run_id)}/taskInstances/extract/xcomEntries"
        assert carol.get(xcoms).status_code == 403
        assert carol.post(f"/api/v2/dags/{OTHER}/dagRuns", json={"logical_date": None}).status_code == 403

        assert carol.get(f"{API}/dags/{OTHER}/dagRuns/{q(run_id)}").json()["resumable"] is True
        preview = carol.post(bulk_url(OTHER), json={"dag_run_ids": [run_id], "dry_run": True})
        assert preview.status_code == 200, preview.text
        assert preview.json()["results"][0]["status"] == "would_resume"
        assert carol.post(resume_url(OTHER, run_id)).status_code == 403
        for selection in ({"dag_run_ids": [run_id]}, {"state": "failed", "since": runs["since"]}):
            refused = carol.post(bulk_url(OTHER), json=selection)
            assert refused.status_code == 403, (selection, refused.text)
            assert "needs permission to trigger its runs" in refused.json()["detail"]
    assert resume_runs(stack, OTHER, run_id) == []

    other_page = ui(stack, f"dags/{OTHER}/dagRuns/{q(run_id)}", "carol")
    assert other_page.status_code == 200
    text = html.unescape(other_page.text)
    assert 'id="resume-btn"' not in text and 'id="read-only"' in text
    assert XCOM_HIDDEN in text and '"amount"' not in text
    other_tab = ui(stack, f"dags/{OTHER}", "carol")
    assert other_tab.status_code == 200 and run_id in html.unescape(other_tab.text)
    assert "Resume selected" not in other_tab.text


def test_team_members_resume_their_own_teams_runs_by_every_route(stack, runs):
    own_page = html.unescape(ui(stack, f"dags/{OWN}/dagRuns/{q(runs['a2'])}", "carol").text)
    assert 'id="resume-btn"' in own_page and '"amount": 10' in own_page and XCOM_HIDDEN not in own_page
    assert "Resume selected" in ui(stack, f"dags/{OWN}", "carol").text

    with stack.variables(resume_test_team_fail="false"):  # the fix, before the resumes
        with stack.client("alice") as alice:
            assert alice.get(f"{API}/dags/{OWN}/dagRuns/{q(runs['a1'])}").json()["resumable"] is True
            created = alice.post(resume_url(OWN, runs["a1"]))
            assert created.status_code == 201, created.text
        with stack.client("carol") as carol:
            window = {"state": "failed", "since": runs["since"]}
            preview = carol.post(bulk_url(OWN), json={**window, "dry_run": True}).json()["results"]
            assert {r["dag_run_id"]: r["status"] for r in preview} == {
                runs["a1"]: "existing",
                runs["a2"]: "would_resume",
            }
            done = carol.post(bulk_url(OWN), json=window)
            assert done.status_code == 200, done.text
            results = {r["dag_run_id"]: r for r in done.json()["results"]}
            assert {run_id: r["status"] for run_id, r in results.items()} == {
                runs["a1"]: "existing",
                runs["a2"]: "created",
            }
            again = carol.post(bulk_url(OWN), json={"dag_run_ids": [runs["a2"]]}).json()["results"]
            assert again[0]["status"] == "existing"
        assert results[runs["a1"]]["new_dag_run_id"] == created.json()["dag_run_id"]
        for result in results.values():
            assert stack.wait_for_run(OWN, result["new_dag_run_id"]) == "success"
            assert stack.task_instances(OWN, result["new_dag_run_id"])["extract"]["try_number"] == 0

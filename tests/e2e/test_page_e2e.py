"""The Resume page over HTTP: what the tab's iframe receives, for each kind of run and user."""

from __future__ import annotations

import html
from urllib.parse import quote

import httpx
import pytest

pytestmark = pytest.mark.e2e


def page(stack, dag_id: str, run_id: str, user: str | None = "admin", **params) -> httpx.Response:
    cookies = {"_token": stack.token(user)} if user else {}
    url = f"{stack.url}/resume/ui/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}"
    return httpx.get(url, cookies=cookies, params=params, timeout=60)


# Release set: how a plugin's tabs are registered in the UI differs by release.
@pytest.mark.release
def test_the_tabs_are_registered_on_the_dag_run_and_dag_pages(stack):
    with stack.client() as c:
        plugins = c.get("/api/v2/plugins").json()["plugins"]
    # What the provider declares; the API adds Airflow's defaults for the rest (more fields in later
    # releases, e.g. nav_top_level from 3.3 on), which say nothing about the tabs.
    declared = ("name", "href", "destination", "url_route", "icon", "icon_dark_mode", "category")
    views = [
        {key: v.get(key) for key in declared}
        for p in plugins
        if p["name"] == "resume"
        for v in p["external_views"]
    ]
    assert views == [
        {
            "name": "Resume",
            "href": "/resume/ui/dags/{DAG_ID}/dagRuns/{RUN_ID}",
            "destination": "dag_run",
            "url_route": "resume",
            "icon": None,
            "icon_dark_mode": None,
            "category": None,
        },
        {
            "name": "Resume",
            "href": "/resume/ui/dags/{DAG_ID}",
            "destination": "dag",
            "url_route": "resume-runs",
            "icon": None,
            "icon_dark_mode": None,
            "category": None,
        },
    ]


def test_page_of_a_failed_run_offers_resume_with_a_csrf_token(stack):
    with stack.variables(resume_example_fail="true"):
        run_id = stack.trigger("resume_example_etl")
        assert stack.wait_for_run("resume_example_etl", run_id) == "failed"

    resp = page(stack, "resume_example_etl", run_id)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    body = resp.text
    assert "Resumable" in body and 'id="resume-btn"' in body
    assert 'data-task="extract" data-action="restored"' in body
    assert "RuntimeError" in body
    assert '"csrf_token": "' in body and '"csrf_token": ""' not in body
    assert "https://" not in body and "http://cdn" not in body  # no external assets

    earlier = page(stack, "resume_example_etl", run_id, from_task_id="extract")
    assert 'data-task="extract" data-action="run"' in earlier.text

    assert page(stack, "resume_example_etl", run_id, user=None).status_code == 401
    viewer = page(stack, "resume_example_etl", run_id, user="viewer")
    assert viewer.status_code == 200
    assert 'id="read-only"' in viewer.text and 'id="resume-btn"' not in viewer.text


def test_page_of_a_dag_without_resume_says_so(stack):
    run_id = stack.trigger("resume_test_not_opted_in")
    stack.wait_for_run("resume_test_not_opted_in", run_id)
    body = page(stack, "resume_test_not_opted_in", run_id).text
    assert "Not resumable" in body
    assert "resume is not enabled for this DAG" in body
    assert 'id="resume-btn"' not in body


# Release set: Airflow's secrets masker differs by release.
@pytest.mark.release
def test_secrets_in_the_replayed_inputs_are_masked(stack):
    with stack.variables(resume_example_fail="true"):
        run_id = stack.trigger("resume_example_etl", conf={"api_key": "s3cr3t-value", "region": "eu"})
        assert stack.wait_for_run("resume_example_etl", run_id) == "failed"
    body = page(stack, "resume_example_etl", run_id).text
    assert "s3cr3t-value" not in body
    assert "***" in body and "eu" in body


def test_page_of_an_unknown_run_is_a_404_that_says_so(stack):
    resp = page(stack, "resume_example_etl", "no_such_run")
    assert resp.status_code == 404
    assert "has no run 'no_such_run'" in html.unescape(resp.text)

"""The Resume tab in a real browser (Debian's Chromium driven by Playwright) against a real Airflow."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import quote

import pytest

from tools.airflow_stack import REPO, USERS, wait_for

pytestmark = pytest.mark.browser

SCREENSHOTS = REPO / "docs" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    path = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
    assert Path(path).exists(), "Debian's chromium is needed for the browser tests (apt-get install chromium)"
    return path


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def logged_in_page(browser, stack, user: str):
    context = browser.new_context(viewport={"width": 1400, "height": 1050})
    page = context.new_page()
    page.goto(stack.url + "/")
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(USERS[user])
    page.get_by_role("button", name="Sign in").click()
    wait_for(lambda: any(c["name"] == "_token" for c in context.cookies()), timeout=30, what="signed in")
    # The login page sets the cookie and then navigates to the UI: wait for that navigation to end, or
    # the test's next goto is interrupted by it.
    page.wait_for_url(lambda url: "/auth/" not in url, timeout=30_000, wait_until="load")
    return page


def open_resume_tab(page, stack, dag_id: str, run_id: str):
    page.goto(f"{stack.url}/dags/{dag_id}/runs/{quote(run_id, safe='')}")
    page.get_by_role("link", name="Resume", exact=True).click()
    frame = page.frame_locator("iframe")
    frame.locator("#verdict").wait_for(timeout=30_000)
    return frame


def test_resume_a_failed_run_from_the_ui(browser, stack):
    with stack.variables(resume_example_fail="true"):
        run_id = stack.trigger("resume_example_etl")
        assert stack.wait_for_run("resume_example_etl", run_id) == "failed"
        stack.set_variable("resume_example_fail", "false")

        page = logged_in_page(browser, stack, "admin")
        frame = open_resume_tab(page, stack, "resume_example_etl", run_id)
        assert "Resumable" in frame.locator("#verdict").inner_text()
        assert "RuntimeError" in frame.locator("body").inner_text()
        steps = frame.locator("#timeline > li")
        assert steps.count() == 3
        assert steps.nth(0).get_attribute("data-action") == "restored"
        assert "row_count" in steps.nth(0).inner_text()  # the restored XComs are previewed
        assert "resume point" in steps.nth(1).inner_text()
        assert "Unchanged" in frame.locator("#structure").inner_text()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "resume-tab.png"))

        frame.locator("#resume-btn").click()
        assert frame.locator("#confirm").is_visible()
        frame.locator("#confirm-yes").click()
        new_run = frame.locator("#new-run")
        new_run.wait_for(timeout=30_000)
        assert new_run.inner_text().startswith(f"resume__{run_id}__1__")
        page.screenshot(path=str(SCREENSHOTS / "resume-tab-resumed.png"))
        assert stack.wait_for_run("resume_example_etl", new_run.inner_text()) == "success"

    # The link inside the sandboxed frame opens the new run's Resume view in the same frame.
    frame.locator("#new-run-link").click()
    frame.locator("#lineage").wait_for(timeout=30_000)
    assert run_id in frame.locator("#lineage").inner_text()


def test_a_refused_run_shows_the_reason(browser, stack):
    run_id = stack.trigger("resume_test_sleepy")
    stack.fail_by_hand("resume_test_sleepy", run_id, "sleepy")
    assert stack.wait_for_run("resume_test_sleepy", run_id) == "failed"

    page = logged_in_page(browser, stack, "admin")
    frame = open_resume_tab(page, stack, "resume_test_sleepy", run_id)
    assert "Not resumable" in frame.locator("#verdict").inner_text()
    assert "set to failed" in frame.locator("#reason").inner_text()
    assert frame.locator("#resume-btn").count() == 0
    page.screenshot(path=str(SCREENSHOTS / "resume-tab-refused.png"))


def test_a_viewer_sees_the_page_read_only_and_dark_mode_follows_airflow(browser, stack):
    with stack.variables(resume_example_fail="true"):
        run_id = stack.trigger("resume_example_etl")
        assert stack.wait_for_run("resume_example_etl", run_id) == "failed"

    page = logged_in_page(browser, stack, "viewer")
    # Set before the next page's scripts run.
    page.context.add_init_script("try { localStorage.setItem('theme', 'dark'); } catch (e) {}")
    frame = open_resume_tab(page, stack, "resume_example_etl", run_id)
    assert "Resumable" in frame.locator("#verdict").inner_text()
    assert frame.locator("#read-only").is_visible()
    assert frame.locator("#resume-btn").count() == 0
    assert "dark" in (frame.locator("html").get_attribute("class") or "")
    page.screenshot(path=str(SCREENSHOTS / "resume-tab-viewer-dark.png"))


def open_dag_resume_tab(page, stack, dag_id: str):
    page.goto(f"{stack.url}/dags/{dag_id}")
    page.get_by_role("link", name="Resume", exact=True).click()
    frame = page.frame_locator("iframe")
    frame.locator("#runs").wait_for(timeout=60_000)
    return frame


def test_resume_several_failed_runs_from_the_dag_tab(browser, stack):
    with stack.variables(resume_example_fail="true"):
        runs = [stack.trigger("resume_example_etl") for _ in range(2)]
        for run_id in runs:
            assert stack.wait_for_run("resume_example_etl", run_id) == "failed"
        stack.set_variable("resume_example_fail", "false")

        page = logged_in_page(browser, stack, "admin")
        frame = open_dag_resume_tab(page, stack, "resume_example_etl")
        for run_id in runs:
            row = frame.locator(f'#runs tr[data-run="{run_id}"]')
            assert row.get_attribute("data-status") == "resumable"
            assert "Resumable at transform" in " ".join(row.locator(".verdict").inner_text().split())
            row.locator("input.pick").check()
        assert frame.locator("#picked").inner_text() == "2 runs selected."

        frame.locator("#preview-btn").click()
        frame.locator("#results").wait_for(timeout=60_000)
        assert "Preview: 2 of 2 would be resumed" in frame.locator("#result").inner_text()
        assert frame.locator('#results tr[data-result="would_resume"]').count() == 2
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "resume-dag-tab-preview.png"))
        assert not any(stack.run_exists("resume_example_etl", f"resume__{r}__1") for r in runs)

        frame.locator("#resume-btn").click()
        assert "Resume 2 runs?" in frame.locator("#confirm").inner_text()
        frame.locator("#confirm-yes").click()
        frame.locator('#results tr[data-result="created"]').nth(1).wait_for(timeout=60_000)
        assert "Resumed 2 of 2 runs" in frame.locator("#result").inner_text()
        page.screenshot(path=str(SCREENSHOTS / "resume-dag-tab-resumed.png"))
        new_runs = [
            frame.locator(f'#results tr[data-run="{run_id}"] td:nth-child(3) a').inner_text()
            for run_id in runs
        ]
        for run_id, new_run in zip(runs, new_runs, strict=True):
            assert new_run.startswith(f"resume__{run_id}__1__")
            assert stack.wait_for_run("resume_example_etl", new_run) == "success"
    # Resumed runs cannot be selected again, and their row says so.
    assert frame.locator(f'#runs tr[data-run="{runs[0]}"] input.pick').is_disabled()
    assert (
        f"Resumed as {new_runs[0]}" in frame.locator(f'#runs tr[data-run="{runs[0]}"] .verdict').inner_text()
    )


def test_the_resume_tab_of_a_mapped_step_shows_which_map_indexes_run_again(browser, stack):
    with stack.variables(resume_test_mapped_fail="true", resume_test_mapped_fail_index="3"):
        run_id = stack.trigger("resume_test_mapped")
        assert stack.wait_for_run("resume_test_mapped", run_id) == "failed"

    page = logged_in_page(browser, stack, "admin")
    frame = open_resume_tab(page, stack, "resume_test_mapped", run_id)
    assert "Resumable" in frame.locator("#verdict").inner_text()
    assert "square map index 3 (try 1)" in " ".join(frame.locator("dl").first.inner_text().split())
    steps = frame.locator("#timeline > li")
    assert [steps.nth(i).get_attribute("data-task") for i in range(steps.count())] == [
        "numbers",
        "square",
        "total",
        "report",
    ]

    square = frame.locator('#timeline > li[data-task="square"]')
    assert square.get_attribute("data-action") == "run"
    assert "resume point" in square.inner_text()
    assert square.locator(".tag", has_text="mapped").is_visible()
    for task in ("numbers", "total", "report"):
        assert frame.locator(f'#timeline > li[data-task="{task}"] .tag', has_text="mapped").count() == 0

    lines = square.locator("ul.map-indexes > li")
    assert lines.count() == 2
    restored = square.locator('ul.map-indexes > li[data-action="restored"]')
    again = square.locator('ul.map-indexes > li[data-action="run"]')
    assert restored.is_visible() and again.is_visible()
    assert " ".join(restored.inner_text().split()) == "map indexes restored, not run again: 0-2, 4"
    assert " ".join(again.inner_text().split()) == "map indexes run again: 3"

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    square.scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOTS / "resume-page-mapped.png"))


def test_the_resume_tab_of_a_parent_run_shows_the_child_run_nested_under_its_trigger_step(browser, stack):
    with stack.variables(resume_example_child_fail="true"):
        run_id = stack.trigger("resume_example_parent")
        assert stack.wait_for_run("resume_example_parent", run_id, timeout=300) == "failed"
        stack.set_variable("resume_example_child_fail", "false")

        page = logged_in_page(browser, stack, "admin")
        frame = open_resume_tab(page, stack, "resume_example_parent", run_id)
        assert "Resumable" in frame.locator("#verdict").inner_text()
        step = frame.locator('#timeline > li[data-task="run_child"]')
        assert "resume point" in step.inner_text()
        child = step.locator(".child")
        assert child.get_attribute("data-child-dag") == "resume_example_child"
        assert child.get_attribute("data-child-action") == "resume"
        assert "is resumed at 'transform'" in child.locator(".child-summary").inner_text()
        lines = [" ".join(t.split()) for t in child.locator(".child-steps > li").all_inner_texts()]
        assert lines == [
            "extract restored, not run again",
            "transform resume point, runs first",
            "load will run",
        ]
        assert frame.locator("#rerun-children").is_visible()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        step.scroll_into_view_if_needed()
        page.screenshot(path=str(SCREENSHOTS / "resume-page-tree.png"))

        frame.locator("#resume-btn").click()
        frame.locator("#confirm-yes").click()
        result = frame.locator("#result")
        result.locator(".child-run").wait_for(timeout=30_000)
        assert "waits for the resumed child run" in result.inner_text()
        assert "resume_example_child" in result.inner_text()

    # The child run's link opens the child run's own Resume view.
    frame.locator("a.child-link").click()
    frame.locator("#verdict").wait_for(timeout=30_000)
    assert "transform" in frame.locator("body").inner_text()

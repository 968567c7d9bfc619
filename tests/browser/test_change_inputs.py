"""The Resume tab's "Change inputs" in a real browser: fields by schema, inline validation, the diff."""

from __future__ import annotations

import pytest

from tests.browser.test_resume_page import (  # noqa: F401 - the module's browser fixture
    SCREENSHOTS,
    browser,
    logged_in_page,
    open_resume_tab,
)

pytestmark = pytest.mark.browser

DAG = "resume_example_inputs"


def change_threshold(frame, value: str) -> None:
    field = frame.locator('#inputs-form .field[data-name="threshold"] input')
    field.fill(value)


def test_fix_a_too_tight_param_and_resume_from_the_ui(browser, stack):  # noqa: F811
    runs = [stack.trigger(DAG) for _ in range(2)]
    for run_id in runs:
        assert stack.wait_for_run(DAG, run_id) == "failed"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    for run_id, theme in zip(runs, ("light", "dark"), strict=True):
        page = logged_in_page(browser, stack, "admin")
        if theme == "dark":
            page.context.add_init_script("try { localStorage.setItem('theme', 'dark'); } catch (e) {}")
        frame = open_resume_tab(page, stack, DAG, run_id)
        form = frame.locator("#inputs-form")
        kinds = {
            f.get_attribute("data-name"): f.get_attribute("data-kind") for f in form.locator(".field").all()
        }
        assert kinds == {
            "threshold": "integer",
            "region": "enum",
            "dry_load": "boolean",
            "columns": "json",
            "label": "string",
        }
        threshold = form.locator('.field[data-name="threshold"]')
        assert threshold.locator("input").input_value() == "10"
        assert "Most rows the check accepts." in threshold.inner_text()
        assert form.locator('.field[data-name="region"] select').input_value() == '"eu"'

        # A value the DAG's params refuse: the message under the field, Resume disabled.
        change_threshold(frame, "0")
        error = threshold.locator(".field-error")
        error.wait_for(state="visible", timeout=30_000)
        assert "less than the minimum of 1" in error.inner_text()
        threshold.scroll_into_view_if_needed()
        assert frame.locator("#resume-btn").is_disabled()
        if theme == "light":
            page.screenshot(path=str(SCREENSHOTS / "resume-tab-inputs-invalid.png"))

        # A value they accept: checked, then the confirmation shows the diff.
        change_threshold(frame, "20")
        frame.locator("#inputs-status.ok").wait_for(timeout=30_000)
        assert "1 change checked" in frame.locator("#inputs-status").inner_text()
        assert threshold.locator(".field-error").inner_text() == ""
        assert frame.locator("#resume-btn").is_enabled()
        frame.locator("#resume-btn").click()
        changes = frame.locator("#confirm-changes li")
        assert changes.count() == 1
        assert " ".join(changes.first.inner_text().split()) == "threshold: 10 → 20"
        frame.locator("#confirm").scroll_into_view_if_needed()
        page.screenshot(path=str(SCREENSHOTS / f"resume-tab-change-inputs-{theme}.png"))
        if theme == "dark":
            assert "dark" in (frame.locator("html").get_attribute("class") or "")

        frame.locator("#confirm-yes").click()
        new_run = frame.locator("#new-run")
        new_run.wait_for(timeout=30_000)
        assert stack.wait_for_run(DAG, new_run.inner_text()) == "success"
        assert stack.note(DAG, new_run.inner_text()).endswith("params changed: threshold 10 -> 20")
        page.context.close()

"""
Hardening of the provider's routes, each attack replayed against a real api-server.

The attacker has an account that may trigger runs (or only read them), knows the routes, and can
make a victim's browser send requests with the victim's ``_token`` session cookie.
"""

from __future__ import annotations

import html
import json
import re
import socket
from urllib.parse import quote, urlparse

import httpx
import pytest

from tests.e2e.runs import resume_runs
from tools.airflow_stack import wait_for

pytestmark = pytest.mark.e2e

API = "/resume/api/v1"
DAG = "resume_example_etl"
XCOM_HIDDEN = "Values hidden: your role may not read this DAG's XComs."


def resume_post_url(run_id: str) -> str:
    return f"{API}/dags/{DAG}/dagRuns/{quote(run_id, safe='')}/resume"


def page_url(stack, run_id: str) -> str:
    return f"{stack.url}/resume/ui/dags/{DAG}/dagRuns/{quote(run_id, safe='')}"


def page(stack, run_id: str, user: str = "admin", **params) -> httpx.Response:
    return httpx.get(
        page_url(stack, run_id), cookies={"_token": stack.token(user)}, params=params, timeout=60
    )


def fail_a_run(stack) -> str:
    with stack.variables(resume_example_fail="true"):
        run_id = stack.trigger(DAG)
        assert stack.wait_for_run(DAG, run_id) == "failed"
    return run_id


@pytest.fixture(scope="module")
def failed_run(stack) -> str:
    """A failed run of the example ETL DAG, only read (never resumed) by this module's tests."""
    return fail_a_run(stack)


# --- 1. API documentation and schema only for signed-in users ------------------------------------


def test_api_docs_and_schema_are_not_served_without_a_login(stack):
    with stack.client(user=None) as anonymous:
        for path in ("/resume/docs", "/resume/redoc", "/resume/openapi.json", f"{API}/openapi.json"):
            resp = anonymous.get(path)
            assert resp.status_code != 200, f"{path} answered 200 without a login"
            assert '"openapi"' not in resp.text and "swagger" not in resp.text.lower(), path
        assert anonymous.get(f"{API}/openapi.json").status_code == 401

    with stack.client(user="viewer") as viewer:
        resp = viewer.get(f"{API}/openapi.json")
    assert resp.status_code == 200
    schema = resp.json()
    assert schema["openapi"].startswith("3.")
    assert schema["servers"] == [{"url": "/resume"}]
    assert "/api/v1/dags/{dag_id}/dagRuns/{dag_run_id}/resume" in schema["paths"]


# --- 2. CSRF: only a bearer token that authenticated the request exempts it -----------------------


def raw_post(stack, path: str, headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes]:
    """POST with header bytes exactly as given (httpx refuses a header value ending in a space)."""
    target = urlparse(stack.url)
    lines = [
        f"POST {path} HTTP/1.1".encode(),
        f"Host: {target.netloc}".encode(),
        b"Content-Length: 0",
        b"Connection: close",
        *(name + b": " + value for name, value in headers),
    ]
    with socket.create_connection((target.hostname, target.port), timeout=60) as conn:
        conn.sendall(b"\r\n".join(lines) + b"\r\n\r\n")
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    status_line, _, rest = received.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


def resumed_as(stack, run_id: str) -> str | None:
    with stack.client() as c:
        return c.get(f"{API}/dags/{DAG}/dagRuns/{quote(run_id, safe='')}").json()["resumed_run_id"]


# Release set: a session cookie beside a bearer token is handled differently by release.
@pytest.mark.release
def test_a_blank_bearer_header_does_not_skip_the_csrf_check(stack):
    run_id = fail_a_run(stack)
    url = resume_post_url(run_id)
    victim_cookie = stack.token("admin")

    # A non-breaking space: FastAPI's HTTPBearer strips it and finds no token, so Airflow
    # authenticates the request by the session cookie.
    forged = httpx.post(
        stack.url + url,
        headers={"Authorization": b"Bearer \xa0"},
        cookies={"_token": victim_cookie},
        timeout=60,
    )
    assert forged.status_code == 403, forged.text
    assert "CSRF" in forged.json()["detail"]

    status, body = raw_post(
        stack, url, [(b"Authorization", b"Bearer "), (b"Cookie", b"_token=" + victim_cookie.encode())]
    )
    assert status == 403, body
    assert resume_runs(stack, DAG, run_id) == []
    assert resumed_as(stack, run_id) is None

    # The same run, resumed by a client whose bearer token authenticates it: no CSRF token needed.
    with stack.client("operator") as operator:
        resp = operator.post(url)
    assert resp.status_code == 201, resp.text
    assert resumed_as(stack, run_id) == resp.json()["dag_run_id"]


# Release set: a session cookie beside a bearer token is handled differently by release.
@pytest.mark.release
def test_a_bearer_token_that_does_not_authenticate_does_not_skip_the_csrf_check(stack):
    # Before Airflow 3.3 a session user built from the cookie wins over a bearer token in the same
    # request: a made-up token beside the victim's cookie must not exempt the request from CSRF.
    run_id = fail_a_run(stack)
    forged = httpx.post(
        stack.url + resume_post_url(run_id),
        headers={"Authorization": "Bearer not-a-token"},
        cookies={"_token": stack.token("admin")},
        timeout=60,
    )
    assert forged.status_code in (401, 403), forged.text  # 3.3 refuses the token, 3.2 the CSRF
    assert resume_runs(stack, DAG, run_id) == []
    assert resumed_as(stack, run_id) is None


# --- 3. Bounded request bodies and validation errors ----------------------------------------------


def test_request_bodies_over_64_kib_are_refused(stack):
    url = resume_post_url("no_such_run")
    body = json.dumps({"from_task_id": "x" * 70_000}).encode()
    assert len(body) > 64 * 1024
    with stack.client("operator") as operator:
        declared = operator.post(url, content=body, headers={"Content-Type": "application/json"})
        assert declared.status_code == 413, declared.text[:300]

        def chunks():
            for start in range(0, len(body), 8192):
                yield body[start : start + 8192]

        streamed = operator.post(url, content=chunks(), headers={"Content-Type": "application/json"})
        assert streamed.status_code == 413, streamed.text[:300]
        assert "transfer-encoding" in {k.lower() for k in streamed.request.headers}

        small = operator.post(url, json={"from_task_id": "transform"})
        assert small.status_code == 404  # an ordinary body still reaches the route


def test_validation_errors_are_short_and_do_not_echo_long_input(stack, failed_run):
    long_id = "A" * 10_000
    with stack.client("operator") as operator:
        resp = operator.post(resume_post_url(failed_run), json={"from_task_id": long_id})
        assert resp.status_code == 422, resp.text[:300]
        assert len(resp.content) < 4096
        assert resp.json()["detail"][0]["loc"] == ["body", "from_task_id"]

        # Many unknown fields: a bounded list of errors, each with its input cut short.
        many = {f"field_{i}": "B" * 20 for i in range(1_000)} | {"other": "C" * 10_000}
        resp = operator.post(resume_post_url(failed_run), json=many)
        assert resp.status_code == 422
        assert len(resp.content) < 4096
        assert "C" * 200 not in resp.text
    assert resumed_as(stack, failed_run) is None

    page_resp = page(stack, failed_run, from_task_id=long_id)
    assert page_resp.status_code == 422
    assert len(page_resp.content) < 4096


# --- 4. Security headers of the Resume page and the API -------------------------------------------


def csp_directives(header: str) -> dict[str, list[str]]:
    directives = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


def test_the_page_sends_a_strict_content_security_policy(stack, failed_run):
    first, second = page(stack, failed_run), page(stack, failed_run)
    assert first.status_code == 200
    csp = csp_directives(first.headers["content-security-policy"])
    assert csp["default-src"] == ["'none'"]
    assert csp["frame-ancestors"] == ["'self'"]
    assert csp["connect-src"] == ["'self'"]
    assert csp["base-uri"] == ["'none'"]
    assert csp["form-action"] == ["'self'"]
    for directive in ("script-src", "style-src"):
        assert "'unsafe-inline'" not in csp[directive]
        [nonce] = [v.removeprefix("'nonce-").removesuffix("'") for v in csp[directive] if "nonce-" in v]
    assert len(nonce) >= 16

    body = first.text
    # Every inline script and style carries the response's nonce; no style attributes (CSP blocks them).
    assert re.findall(r"<(script|style)\b([^>]*)>", body) == [
        ("style", f' nonce="{nonce}"'),
        ("script", f' nonce="{nonce}"'),
    ]
    assert " style=" not in body and not re.search(r"<[^>]+\son[a-z]+=", body)
    assert csp_directives(second.headers["content-security-policy"])["script-src"] != csp["script-src"]

    not_found = page(stack, "no_such_run")
    assert not_found.status_code == 404
    for resp in (first, not_found):
        assert resp.headers["x-content-type-options"] == "nosniff"
        assert resp.headers["referrer-policy"] in ("same-origin", "no-referrer")
    assert "'unsafe-inline'" not in not_found.headers["content-security-policy"]
    assert " style=" not in not_found.text

    with stack.client("viewer") as viewer:
        verdict = viewer.get(f"{API}/dags/{DAG}/dagRuns/{quote(failed_run, safe='')}")
    assert verdict.status_code == 200
    assert verdict.headers["x-content-type-options"] == "nosniff"


@pytest.mark.browser
def test_the_page_works_under_its_policy_and_an_injected_script_does_not_run(stack, failed_run):
    from playwright.sync_api import sync_playwright

    from tests.browser.test_resume_page import CHROMIUM_ARGS, chromium_path

    violations: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context()
            context.add_cookies([{"name": "_token", "value": stack.token("admin"), "url": stack.url}])
            tab = context.new_page()
            tab.on("console", lambda m: "Content Security Policy" in m.text and violations.append(m.text))
            tab.goto(page_url(stack, failed_run))
            # The page's own style and script (carrying the nonce) apply and run.
            assert tab.evaluate("getComputedStyle(document.body).paddingLeft") == "20px"
            tab.locator("#resume-btn").click()
            assert tab.locator("#confirm").is_visible()
            assert violations == []
            # A script injected into the page (as markup from a run id or an XCom could try) does not.
            ran = tab.evaluate(
                """() => { const s = document.createElement("script");
                           s.textContent = "window.injected = true"; document.body.appendChild(s);
                           return window.injected === true; }"""
            )
            assert ran is False
            wait_for(lambda: violations, timeout=10, what="the browser reporting the blocked script")
        finally:
            browser.close()


# --- 5. XCom values only for users who may read XComs ---------------------------------------------


def test_xcom_values_are_hidden_from_a_user_who_may_not_read_xcoms(stack, failed_run):
    xcoms = f"/api/v2/dags/{DAG}/dagRuns/{quote(failed_run, safe='')}/taskInstances/extract/xcomEntries"
    with stack.client("auditor") as auditor:
        assert auditor.get(f"/api/v2/dags/{DAG}/dagRuns/{quote(failed_run, safe='')}").status_code == 200
        assert auditor.get(xcoms).status_code == 403  # Airflow itself refuses the auditor XComs

    resp = page(stack, failed_run, user="auditor")
    assert resp.status_code == 200
    text = html.unescape(resp.text)
    assert XCOM_HIDDEN in text
    assert "return_value" in text and "row_count" in text
    assert '"amount"' not in text  # extract returned [{"id": 1, "amount": 10}, ...]
    assert re.search(r"row_count</code>\s*<span[^>]*>1 byte<", resp.text)

    for user in ("viewer", "admin"):
        text = html.unescape(page(stack, failed_run, user=user).text)
        assert '"amount": 10' in text, user
        assert XCOM_HIDDEN not in text, user


# --- 7. values out of range: named, never a 500 or a traceback ---------------------------------------


def test_reason_codes_are_an_enum_in_the_served_schema(stack):
    with stack.client(user="viewer") as viewer:
        schema = viewer.get(f"{API}/openapi.json").json()
    codes = schema["components"]["schemas"]["ReasonCode"]["enum"]
    assert {"manual_kill", "state_missing", "signing_unavailable", "run_id_taken"} <= set(codes)


@pytest.mark.parametrize("moment", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59"])
def test_a_bulk_date_outside_airflows_range_is_422_naming_the_field(stack, moment):
    with stack.client() as c:
        resp = c.post(f"{API}/dags/{DAG}/dagRuns/resume", json={"state": "failed", "since": moment})
    assert resp.status_code == 422, resp.text
    assert [(e["loc"], e["msg"]) for e in resp.json()["detail"]] == [
        (["body", "since"], "Value error, outside the times Airflow can store (years 1 to 9999, in UTC)")
    ]


def test_cleanup_refuses_a_window_that_overflows_in_one_line(stack):
    done = stack.cli("resume", "cleanup", "--older-than-days", "3000000", "--dry-run", check=False)
    assert done.returncode == 1
    problem = done.stderr.strip().splitlines()
    assert problem[-1].startswith("Refused: --older-than-days 3000000 is too large: give at most "), problem
    assert "Traceback" not in done.stderr + done.stdout

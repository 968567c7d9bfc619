"""The Resume page route, served by the provider's FastAPI app inside the DAG run page's iframe."""

from __future__ import annotations

import secrets
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from airflow_resume_provider import conf, inputs
from airflow_resume_provider.api.schemas import TASK_ID_MAX_LENGTH
from airflow_resume_provider.api.security import (
    SESSION_COOKIE,
    CanReadRuns,
    GetUserDep,
    SessionDep,
    can_read_xcoms,
    can_trigger_runs,
    csrf_token_for,
    runs_readable_by,
)
from airflow_resume_provider.bulk import MAX_RUNS_PER_REQUEST, failed_runs_page, require_dag
from airflow_resume_provider.exceptions import RunNotFoundError
from airflow_resume_provider.resume import assess, assess_with_facts
from airflow_resume_provider.tree_access import visible_verdict
from airflow_resume_provider.ui import page

if TYPE_CHECKING:
    import jinja2

router = APIRouter()

PAGE_PATH = "/ui/dags/{dag_id}/dagRuns/{dag_run_id}"
DAG_PAGE_PATH = "/ui/dags/{dag_id}"
#: Failed runs per page of the DAG-level Resume tab by default (each needs its verdict, read from its state).
RUNS_PER_PAGE = 20


@cache
def _templates() -> jinja2.Environment:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
    )


def _content_security_policy(nonce: str) -> str:
    """Only this response's own inline script and style run; fetches go to this origin only."""
    return "; ".join(
        (
            "default-src 'none'",
            f"script-src 'nonce-{nonce}'",
            f"style-src 'nonce-{nonce}'",
            "connect-src 'self'",
            "frame-ancestors 'self'",  # the tab's iframe on Airflow's own pages
            "base-uri 'none'",
            "form-action 'self'",
        )
    )


def _render(template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A page with a fresh CSP nonce; the template puts ``nonce`` on its inline script and style."""
    nonce = secrets.token_urlsafe(18)
    html = _templates().get_template(template).render(nonce=nonce, **context)
    return HTMLResponse(
        html,
        status_code=status_code,
        headers={
            "Cache-Control": "no-store",
            "Content-Security-Policy": _content_security_policy(nonce),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
        },
    )


@router.get(PAGE_PATH, response_class=HTMLResponse, dependencies=[CanReadRuns], include_in_schema=False)
def resume_page(
    request: Request,
    dag_id: str,
    dag_run_id: str,
    session: SessionDep,
    user: GetUserDep,
    from_task_id: Annotated[str | None, Query(max_length=TASK_ID_MAX_LENGTH)] = None,
    rerun_children: bool = False,
) -> HTMLResponse:
    """The Resume tab: verdict, failure, steps, structure check, inputs, lineage and the Resume button."""
    root = request.scope.get("root_path", "").rstrip("/")
    page_base = f"{root}/ui/dags/{quote(dag_id, safe='')}/dagRuns/"
    try:
        verdict, facts, ti_states, dag = assess_with_facts(
            session, dag_id, dag_run_id, from_task_id=from_task_id, rerun_children=rerun_children
        )
    except RunNotFoundError as err:
        return _render("not_found.html", 404, message=str(err))
    verdict = visible_verdict(verdict, runs_readable_by(user))
    model = page.build(
        verdict,
        facts,
        ti_states,
        show_xcom_values=can_read_xcoms(dag_id, user),
        param_fields=inputs.fields(dag, facts.original_params) if facts.original_params is not None else [],
    )
    can_trigger = can_trigger_runs(dag_id, user)
    cookie = request.cookies.get(SESSION_COOKIE, "")
    client = {
        "resume_url": f"{root}/api/v1/dags/{quote(dag_id, safe='')}/dagRuns/{quote(dag_run_id, safe='')}/resume",
        "csrf_token": csrf_token_for(cookie) if cookie else "",
        "from_task_id": from_task_id,
        "rerun_children": rerun_children,
        "failed_task_id": verdict.failed_task_id,
        "page_base": page_base,
        "airflow_run_base": f"{conf.api_base_url()}/dags/{quote(dag_id, safe='')}/runs/",
    }
    return _render(
        "resume.html",
        dag_id=dag_id,
        run_id=dag_run_id,
        page=model,
        client=client,
        can_trigger=can_trigger,
        can_choose=verdict.resumable and not verdict.resumed_run_id,
        # A run refused only because today's params refuse its values can be fixed by changing them.
        can_change_inputs=can_trigger
        and not verdict.resumed_run_id
        and (verdict.resumable or verdict.reason_code == "params_invalid"),
        input_changes_allowed=conf.run_conf_overrides_params(),
        page_url=lambda run_id: page_base + quote(str(run_id), safe=""),
        run_url=lambda other_dag, run_id: (
            f"{root}/ui/dags/{quote(str(other_dag), safe='')}/dagRuns/{quote(str(run_id), safe='')}"
        ),
        has_children=any(step.children for step in model.steps),
        rerun_children=rerun_children,
    )


@router.get(DAG_PAGE_PATH, response_class=HTMLResponse, dependencies=[CanReadRuns], include_in_schema=False)
def dag_page(
    request: Request,
    dag_id: str,
    session: SessionDep,
    user: GetUserDep,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_RUNS_PER_REQUEST)] = RUNS_PER_PAGE,
) -> HTMLResponse:
    """The DAG's Resume tab: its failed runs (newest first, paged) with their verdicts; resume a selection."""
    root = request.scope.get("root_path", "").rstrip("/")
    quoted_dag = quote(dag_id, safe="")
    page_base = f"{root}/ui/dags/{quoted_dag}/dagRuns/"
    try:
        require_dag(session, dag_id)
    except RunNotFoundError as err:
        return _render("not_found.html", 404, message=str(err))
    runs, total = failed_runs_page(session, dag_id, offset=offset, limit=limit)
    rows = [
        page.failed_run_row(run_id, ended, _verdict_or_none(session, dag_id, run_id, user))
        for run_id, ended in runs
    ]
    cookie = request.cookies.get(SESSION_COOKIE, "")
    client = {
        "bulk_url": f"{root}/api/v1/dags/{quoted_dag}/dagRuns/resume",
        "csrf_token": csrf_token_for(cookie) if cookie else "",
        "page_base": page_base,
        "max_runs": MAX_RUNS_PER_REQUEST,
    }
    return _render(
        "dag.html",
        dag_id=dag_id,
        rows=rows,
        total=total,
        offset=offset,
        per_page=limit,
        client=client,
        can_trigger=can_trigger_runs(dag_id, user),
        page_url=lambda run_id: page_base + quote(str(run_id), safe=""),
        dag_page_url=f"{root}/ui/dags/{quoted_dag}",
    )


def _verdict_or_none(session: Any, dag_id: str, run_id: str, user: Any) -> Any:
    """
    The run's verdict as ``user`` may see it; None (shown as "could not be assessed") when assessing it
    failed unexpectedly.
    """
    import logging

    try:
        verdict = assess(session, dag_id, run_id)
        return visible_verdict(verdict, runs_readable_by(user))
    except Exception:
        logging.getLogger(__name__).exception("Assessing run %s of DAG %s failed", run_id, dag_id)
        session.rollback()
        return None

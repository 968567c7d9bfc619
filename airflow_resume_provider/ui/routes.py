"""The Resume page route, served by the provider's FastAPI app inside the DAG run page's iframe."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from airflow_resume_provider.api.security import (
    SESSION_COOKIE,
    CanReadRuns,
    GetUserDep,
    SessionDep,
    can_trigger_runs,
    csrf_token_for,
)
from airflow_resume_provider.resume import RunNotFoundError, assess_with_facts
from airflow_resume_provider.ui import page

if TYPE_CHECKING:
    import jinja2

router = APIRouter()

PAGE_PATH = "/ui/dags/{dag_id}/dagRuns/{dag_run_id}"


@cache
def _templates() -> jinja2.Environment:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
    )


def _airflow_base_url() -> str:
    from airflow.configuration import conf

    return (conf.get("api", "base_url", fallback="") or "").rstrip("/")


@router.get(PAGE_PATH, response_class=HTMLResponse, dependencies=[CanReadRuns], include_in_schema=False)
def resume_page(
    request: Request,
    dag_id: str,
    dag_run_id: str,
    session: SessionDep,
    user: GetUserDep,
    from_task_id: str | None = None,
) -> HTMLResponse:
    """The Resume tab: verdict, failure, steps, structure check, inputs, lineage and the Resume button."""
    root = request.scope.get("root_path", "").rstrip("/")
    page_base = f"{root}/ui/dags/{quote(dag_id, safe='')}/dagRuns/"
    templates = _templates()
    try:
        verdict, facts, ti_states = assess_with_facts(session, dag_id, dag_run_id, from_task_id=from_task_id)
    except RunNotFoundError as err:
        html = templates.get_template("not_found.html").render(message=str(err))
        return HTMLResponse(html, status_code=404)
    model = page.build(verdict, facts, ti_states)
    cookie = request.cookies.get(SESSION_COOKIE, "")
    client = {
        "resume_url": f"{root}/api/v1/dags/{quote(dag_id, safe='')}/dagRuns/{quote(dag_run_id, safe='')}/resume",
        "csrf_token": csrf_token_for(cookie) if cookie else "",
        "from_task_id": from_task_id,
        "failed_task_id": verdict.failed_task_id,
        "page_base": page_base,
        "airflow_run_base": f"{_airflow_base_url()}/dags/{quote(dag_id, safe='')}/runs/",
    }
    html = templates.get_template("resume.html").render(
        dag_id=dag_id,
        run_id=dag_run_id,
        page=model,
        client=client,
        can_trigger=can_trigger_runs(dag_id, user),
        can_choose=verdict.resumable and not verdict.resumed_run_id,
        page_url=lambda run_id: page_base + quote(str(run_id), safe=""),
    )
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})

"""The FastAPI app: the REST API (and the Resume page, see ``ui``)."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import Body, FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from airflow_resume_provider.api.middleware import BodySizeLimit, SecurityHeaders
from airflow_resume_provider.api.schemas import BulkResumeRequest, ErrorOut, ResumeRequest
from airflow_resume_provider.api.security import (
    CanReadRuns,
    GetUserDep,
    SessionDep,
    SignedIn,
    audit,
    csrf_protected,
    require_trigger_permission,
    runs_readable_by,
    runs_triggerable_by,
)
from airflow_resume_provider.api.validation import bounded_validation_error
from airflow_resume_provider.bulk import BulkOutcome, failed_run_ids, require_dag, resume_many
from airflow_resume_provider.exceptions import NotResumableError, ResumeError
from airflow_resume_provider.inputs import InputOverrides
from airflow_resume_provider.models import ReasonCode, ResumePreview, Verdict
from airflow_resume_provider.resume import ResumeOutcome, assess, preview, resume
from airflow_resume_provider.tree_access import visible_children, visible_verdict

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"


_JSON_HEADERS = {"X-Content-Type-Options": "nosniff"}


async def provider_error(request: Request, exc: Exception) -> JSONResponse:
    """
    Every error of the provider, answered in one place: its status (404, 409, 422, 503...), its
    message and its ``reason_code``. Only an unexpected one (500) is logged with its traceback.
    """
    assert isinstance(exc, ResumeError)
    if exc.status_code >= 500 and exc.status_code != status.HTTP_503_SERVICE_UNAVAILABLE:
        log.error("Error in %s %s", request.method, request.url.path, exc_info=exc)
    content = {"detail": str(exc), "reason_code": exc.reason_code.value}
    param = getattr(exc, "param", None)
    if param is not None:
        content["param"] = param  # the refused input, for the page to show the message beside it
    return JSONResponse(status_code=exc.status_code, content=content, headers=_JSON_HEADERS)


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    """No bare 500: an unexpected error is logged with its traceback and answered as JSON."""
    log.error("Unexpected error in %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(
        status_code=status.HTTP_500_INTERNAL_SERVER_ERROR,
        content={
            "detail": f"Unexpected error: {type(exc).__name__}; see the API server's log.",
            "reason_code": ReasonCode.RESUME_FAILED.value,
        },
        headers=_JSON_HEADERS,
    )


def install_error_handlers(app: FastAPI) -> None:
    """Every error answered as JSON: malformed requests, the provider's errors, anything unexpected."""
    app.exception_handler(RequestValidationError)(bounded_validation_error)
    app.exception_handler(ResumeError)(provider_error)
    app.exception_handler(Exception)(unexpected_error)


def create_app() -> FastAPI:
    app = FastAPI(
        title="Airflow Resume",
        description="Resume failed runs of linear DAGs at the failed task, with the same inputs.",
        version="1",
        # No interactive docs, and the schema only for signed-in users (see ``openapi_schema``).
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.add_middleware(BodySizeLimit)
    app.add_middleware(SecurityHeaders)
    install_error_handlers(app)

    @app.get(API_PREFIX + "/openapi.json", dependencies=[SignedIn], include_in_schema=False)
    def openapi_schema(request: Request) -> JSONResponse:
        """The OpenAPI schema of this API, for any authenticated user; paths are under ``servers``."""
        mounted_at = request.scope.get("root_path", "").rstrip("/")
        return JSONResponse({**app.openapi(), "servers": [{"url": mounted_at or "/"}]})

    @app.get(
        API_PREFIX + "/dags/{dag_id}/dagRuns/{dag_run_id}",
        response_model=Verdict,
        responses={404: {"model": ErrorOut}},
        dependencies=[CanReadRuns],
    )
    def get_resume_verdict(
        dag_id: str, dag_run_id: str, session: SessionDep, user: GetUserDep, rerun_children: bool = False
    ) -> Verdict:
        """
        Whether the run can be resumed, why not, and what a resume would do to each task (with
        ``rerun_children``: as a resume that asks for fresh child runs would see it). Child runs of
        DAGs the user may not read show their ids and verdict, not their reasons and plans.
        """
        verdict = assess(session, dag_id, dag_run_id, rerun_children=rerun_children)
        return visible_verdict(verdict, runs_readable_by(user))

    @app.post(
        API_PREFIX + "/dags/{dag_id}/dagRuns/{dag_run_id}/resume",
        response_model=ResumeOutcome,
        status_code=status.HTTP_201_CREATED,
        responses={
            200: {
                "model": ResumeOutcome | ResumePreview,
                "description": "The run was already resumed (that run is returned), or a dry run's answer.",
            },
            403: {
                "model": ErrorOut,
                "description": "Resuming needs permission to trigger runs of the DAG, and of each child DAG "
                "whose run it resumes (a dry run needs read); changing inputs needs "
                "[core] dag_run_conf_overrides_params on.",
            },
            404: {"model": ErrorOut},
            409: {
                "model": ErrorOut,
                "description": "The run cannot be resumed, or was already resumed with other inputs.",
            },
            422: {"model": ErrorOut, "description": "Malformed request, or a changed input is refused."},
            503: {"model": ErrorOut, "description": "The state folder or the signing secret is unavailable."},
        },
        dependencies=[CanReadRuns, csrf_protected, audit("resume_dag_run")],
    )
    def resume_dag_run(
        dag_id: str,
        dag_run_id: str,
        session: SessionDep,
        user: GetUserDep,
        body: Annotated[ResumeRequest | None, Body()] = None,
    ):
        """
        Create the resumed run (201), or return the one that already resumed this run (200); with
        ``params`` / ``conf``, with those inputs changed. ``dry_run``: the verdict, the merged params and
        the changes (200); creates nothing.
        """
        body = body or ResumeRequest()
        overrides = InputOverrides(params=body.params or {}, conf=body.conf or {})
        may_read = runs_readable_by(user)
        if body.dry_run:
            answer = preview(
                session,
                dag_id,
                dag_run_id,
                from_task_id=body.from_task_id,
                overrides=overrides or None,
                rerun_children=body.rerun_children,
            )
            answer = answer.model_copy(update={"verdict": visible_verdict(answer.verdict, may_read)})
            return JSONResponse(status_code=status.HTTP_200_OK, content=answer.to_dict())
        require_trigger_permission(dag_id, user)
        try:
            outcome = resume(
                session,
                dag_id,
                dag_run_id,
                from_task_id=body.from_task_id,
                user=user.get_name() if user else None,
                triggered_by="rest_api",
                overrides=overrides or None,
                rerun_children=body.rerun_children,
                may_trigger=runs_triggerable_by(user),
            )
        except NotResumableError as err:
            raise NotResumableError(visible_verdict(err.verdict, may_read)) from None
        if outcome.created:
            return outcome
        return JSONResponse(status_code=status.HTTP_200_OK, content=outcome.to_dict())

    @app.post(
        API_PREFIX + "/dags/{dag_id}/dagRuns/resume",
        response_model=BulkOutcome,
        responses={
            403: {
                "model": ErrorOut,
                "description": "Resuming needs trigger permission; a dry run needs read.",
            },
            404: {"model": ErrorOut},
            422: {
                "model": ErrorOut,
                "description": "Malformed request, or more runs than one request may resume.",
            },
        },
        dependencies=[CanReadRuns, csrf_protected, audit("resume_dag_runs")],
    )
    def resume_dag_runs(
        dag_id: str, body: BulkResumeRequest, session: SessionDep, user: GetUserDep
    ) -> BulkOutcome:
        """Resume many failed runs of the DAG (or, with ``dry_run``, say what would happen to each)."""
        if not body.dry_run:
            require_trigger_permission(dag_id, user)
        require_dag(session, dag_id)
        run_ids = body.dag_run_ids
        if run_ids is None:
            run_ids = failed_run_ids(session, dag_id, since=body.since, until=body.until)
        outcome = resume_many(
            session,
            dag_id,
            run_ids,
            dry_run=body.dry_run,
            user=user.get_name() if user else None,
            triggered_by="rest_api",
            rerun_children=body.rerun_children,
            may_trigger=runs_triggerable_by(user),
        )
        may_read = runs_readable_by(user)
        results = []
        for result in outcome.results:
            children, reason = visible_children(result.children, result.reason, may_read)
            results.append(result.model_copy(update={"children": children, "reason": reason}))
        return outcome.model_copy(update={"results": results})

    from airflow_resume_provider.ui.routes import router as ui_router

    app.include_router(ui_router)
    return app

"""422 answers that stay short: FastAPI's default echoes every rejected input in full."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from airflow_resume_provider.display import shortened

if TYPE_CHECKING:
    from fastapi import Request
    from fastapi.exceptions import RequestValidationError

#: How much of a rejected input (or of a name in an error's location) is echoed back.
MAX_ECHO_CHARS = 100
#: How many errors one answer lists.
MAX_ERRORS = 10


def _cut(text: str) -> str:
    return shortened(text, MAX_ECHO_CHARS)


def _short_input(value: Any) -> Any:
    if isinstance(value, str):
        return _cut(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    text = json.dumps(jsonable_encoder(value), ensure_ascii=False)
    return value if len(text) <= MAX_ECHO_CHARS else _cut(text)


def _short_error(error: dict[str, Any]) -> dict[str, Any]:
    short = {
        "type": error.get("type"),
        "loc": [_cut(part) if isinstance(part, str) else part for part in error.get("loc", ())],
        "msg": _cut(str(error.get("msg", ""))),
    }
    if "input" in error:
        short["input"] = _short_input(error["input"])
    if isinstance(error.get("ctx"), dict):
        short["ctx"] = {
            k: v if v is None or isinstance(v, bool | int | float) else _cut(str(v))
            for k, v in error["ctx"].items()
        }
    return short


async def bounded_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """``{"detail": [...]}`` like FastAPI's, with at most ``MAX_ERRORS`` errors and inputs cut short."""
    errors = list(exc.errors())
    detail = [_short_error(e) for e in errors[:MAX_ERRORS]]
    if len(errors) > MAX_ERRORS:
        detail.append(
            {"type": "too_many_errors", "loc": [], "msg": f"{len(errors) - MAX_ERRORS} more errors not shown"}
        )
    return JSONResponse(status_code=422, content=jsonable_encoder({"detail": detail}))

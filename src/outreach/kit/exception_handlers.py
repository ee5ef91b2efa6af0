"""Every error becomes ``application/problem+json``; nothing leaks a stack trace."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException

from outreach.kit.errors import PROBLEM_JSON, AppError, FieldError, Problem
from outreach.kit.idempotency import IdempotentReplay, replay_handler
from outreach.kit.logging import get_logger
from outreach.kit.routing import allowed_methods

log = get_logger("outreach.errors")

_HTTP_CODES = {
    400: ("bad_request", "Bad request"),
    401: ("unauthorized", "Authentication required"),
    403: ("forbidden", "Forbidden"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    406: ("not_acceptable", "Not acceptable"),
    413: ("payload_too_large", "Request body too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
    422: ("validation_error", "Request validation failed"),
    429: ("rate_limited", "Too many requests"),
}


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def problem_response(
    request: Request, problem: Problem, headers: dict[str, str] | None = None
) -> Response:
    problem.instance = request.url.path
    problem.request_id = _request_id(request)
    return JSONResponse(
        problem.model_dump(exclude_none=True),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


async def app_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AppError)
    problem = exc.to_problem(instance=None, request_id=None)
    return problem_response(request, problem, exc.headers)


async def http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code, title = _HTTP_CODES.get(exc.status_code, ("http_error", "HTTP error"))
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail != title else None
    problem = Problem(title=title, status=exc.status_code, code=code, detail=detail)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        # Starlette names the methods of the one route that matched the path.
        headers["Allow"] = ", ".join(allowed_methods(request.app, request.scope))
    return problem_response(request, problem, headers)


def _field_error(error: dict[str, Any]) -> FieldError:
    return FieldError(loc=list(error.get("loc", ())), message=error["msg"], type=error["type"])


async def validation_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [_field_error(e) for e in exc.errors()]
    json_invalid = any(e.type == "json_invalid" for e in errors)
    problem = Problem(
        title="Malformed JSON" if json_invalid else "Request validation failed",
        status=422,
        code="malformed_json" if json_invalid else "validation_error",
        detail="; ".join(f"{'.'.join(map(str, e.loc))}: {e.message}" for e in errors[:5]),
        errors=errors,
    )
    return problem_response(request, problem)


async def database_unavailable_handler(request: Request, exc: Exception) -> Response:
    log.error("database unavailable", error=str(exc).splitlines()[0][:300])
    problem = Problem(
        title="Database unavailable",
        status=503,
        code="database_unavailable",
        detail="the database could not be reached; nothing was changed, retry shortly",
    )
    return problem_response(request, problem, {"Retry-After": "5"})


def install_exception_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, app_error_handler)
    app.add_exception_handler(HTTPException, http_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(IdempotentReplay, replay_handler)
    app.add_exception_handler(OperationalError, database_unavailable_handler)
    app.add_exception_handler(InterfaceError, database_unavailable_handler)

"""Rendering pages: the Jinja2 environment, the page route class, and how a refusal
becomes a page (the problem's ``detail`` in words, the form as the user typed it)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException

from outreach.auth.dependencies import request_csrf_token
from outreach.kit.errors import AppError, FieldError, Problem, Unauthorized, Unprocessable
from outreach.kit.idempotency import IdempotentReplay
from outreach.kit.logging import get_logger
from outreach.kit.routing import ApiRoute
from outreach.kit.sentry import report_request_error

log = get_logger("outreach.web")
HERE = Path(__file__).parent
CSRF_FIELD = "csrf_token"  # a form cannot send a header: the token rides in this field
SECRET_FIELDS = {"password", CSRF_FIELD}  # never typed back into a page

templates = Jinja2Templates(directory=HERE / "templates")


def _when(value: datetime | None) -> str:
    return value.strftime("%d %b %Y, %H:%M UTC") if value else ""


def _label(value: object) -> str:
    text = str(getattr(value, "value", value))
    return text.replace("_", " ")


def _options(items: list[Any], value: str, text: str) -> list[tuple[str, str]]:
    """``(value, text)`` pairs for a select, from a list of schemas."""
    return [(str(getattr(item, value)), str(getattr(item, text))) for item in items]


templates.env.filters["when"] = _when
templates.env.filters["options"] = _options
templates.env.filters["label"] = _label


class SignInFirst(Unauthorized):
    """A page needs a signed-in user: the browser is sent to the sign-in page."""


class FormInvalid(Unprocessable):
    code, title = "validation_error", "Please check the form"


class FormRefused(Exception):
    """A service refused a form. Raised out of the handler so the request's unit of
    work rolls back first; :class:`PageRoute` then shows the form again."""

    def __init__(self, error: AppError, template: str, context: dict[str, Any]) -> None:
        super().__init__(error.detail or error.title)
        self.error = error
        self.template = template
        self.context = context


def csrf_token(request: Request) -> str:
    """The value a page puts in its forms: the one the API expects in ``X-CSRF-Token``."""
    return request_csrf_token(request)


def typed_values(form: Mapping[str, Any]) -> dict[str, str]:
    """What the user typed, to fill the form again (never a password or the token)."""
    return {k: v for k, v in form.items() if isinstance(v, str) and k not in SECRET_FIELDS}


def problem_of(error: AppError) -> Problem:
    return error.to_problem(instance=None, request_id=None)


def render(
    request: Request, name: str, context: Mapping[str, Any] | None = None, status: int = 200
) -> Response:
    values = {"csrf_token": csrf_token(request), "values": {}, "problem": None, **(context or {})}
    return templates.TemplateResponse(request, name, values, status_code=status)


def _dotted(loc: tuple[str | int, ...]) -> str:
    return ".".join(map(str, loc))


def parse_form(
    schema: type[BaseModel],
    data: Mapping[str, Any],
    name: Callable[[tuple[str | int, ...]], str] = _dotted,
) -> Any:
    """The API's own request schema, filled from a form; a bad field is a 422 naming it
    (``name`` says a field's location in the form's words, e.g. "follow-up 1")."""
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        errors = [
            FieldError(loc=[str(p) for p in e["loc"]], message=e["msg"], type=e["type"])
            for e in exc.errors()
        ]
        detail = "; ".join(f"{name(tuple(e['loc'])) or 'form'}: {e['msg']}" for e in exc.errors())
        raise FormInvalid(detail, errors=errors) from exc


@asynccontextmanager
async def refused_form(template: str, context: dict[str, Any]) -> AsyncIterator[None]:
    """Turn a service's refusal inside the block into the same form shown again."""
    try:
        yield
    except SignInFirst:
        raise
    except AppError as exc:
        raise FormRefused(exc, template, context) from exc


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _sign_in_redirect(request: Request) -> Response:
    target = request.url.path if request.method == "GET" else "/"
    return see_other(f"/sign-in?next={quote(target)}")


def _error_page(request: Request, error: AppError) -> Response:
    return render(request, "error.html", {"problem": problem_of(error)}, status=error.status)


def _problem_page(request: Request, status: int, title: str, detail: str) -> Response:
    problem = Problem(title=title, status=status, code="page_error", detail=detail)
    return render(request, "error.html", {"problem": problem}, status=status)


class PageRoute(ApiRoute):
    """A page: a refusal becomes HTML (after the rollback), never problem+json or a trace."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            try:
                # FastAPI closes function-scoped dependencies (the request's unit of
                # work) in a stack around this whole handler, which would see the page
                # rendered instead of the refusal and commit. This inner stack closes
                # them with the exception first: a refused page rolls back.
                async with AsyncExitStack() as function_stack:
                    request.scope["fastapi_function_astack"] = function_stack
                    return await handler(request)
            except IdempotentReplay as replay:  # a form sent again: its first answer
                return replay.to_response()
            except (SignInFirst, Unauthorized):
                return _sign_in_redirect(request)
            except FormRefused as refused:
                context = {
                    **refused.context,
                    "problem": problem_of(refused.error),
                }
                return render(request, refused.template, context, status=refused.error.status)
            except AppError as exc:
                return _error_page(request, exc)
            except RequestValidationError as exc:
                fields = "; ".join(str(e.get("msg")) for e in exc.errors()[:3])
                return _error_page(request, FormInvalid(fields or "the request was not valid"))
            except HTTPException as exc:  # e.g. an upload over the body limit (413)
                return _problem_page(request, exc.status_code, "Not done", str(exc.detail))
            except (OperationalError, InterfaceError) as exc:
                log.error("database unavailable", error=str(exc).splitlines()[0][:300])
                detail = "the database could not be reached; nothing was changed, retry shortly"
                return _problem_page(request, 503, "Database unavailable", detail)
            except Exception as exc:
                # As the request middleware does for the API: the trace to the log and
                # the error report, the person a page in words with the request's id.
                log.exception("unhandled error on a page", exc_info=exc)
                request_id = str(getattr(request.state, "request_id", ""))
                report_request_error(
                    exc, request_id=request_id, user_id=getattr(request.state, "user_id", None)
                )
                detail = (
                    "something went wrong on our side and nothing was changed; try again, "
                    f"and quote {request_id} if it keeps happening"
                )
                return _problem_page(request, 500, "Something went wrong", detail)

        return page_handler


def as_uuid(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None

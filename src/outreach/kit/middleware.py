"""One pure-ASGI middleware for every request: request id, log context,
access log, metrics, error reports, security headers and the body size limit.

Pure ASGI (not ``BaseHTTPMiddleware``) keeps the per-request overhead small;
``bench/api_overhead.py`` measures it.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import structlog
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from outreach.kit import metrics
from outreach.kit.logging import get_logger
from outreach.kit.sentry import report_request_error

_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
    (b"x-frame-options", b"DENY"),
]

access_log = get_logger("outreach.access")


@dataclass(frozen=True)
class RequestInfo:
    request_id: str
    ip: str | None


current_request: ContextVar[RequestInfo | None] = ContextVar("current_request", default=None)


def request_id_from(headers: list[tuple[bytes, bytes]]) -> str:
    """The client's ``X-Request-ID`` when sane, otherwise a fresh one."""
    for name, value in headers:
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            if _SANE_REQUEST_ID.match(candidate):
                return candidate
            break
    return uuid.uuid4().hex


def _internal_error_start() -> Message:
    return {
        "type": "http.response.start",
        "status": 500,
        "headers": [(b"content-type", b"application/problem+json")],
    }


def _internal_error_body(request_id: str, scope: Scope) -> bytes:
    return json.dumps(
        {
            "type": "about:blank",
            "title": "Internal server error",
            "status": 500,
            "code": "internal_error",
            "detail": "an unexpected error happened; quote the request_id when reporting it",
            "instance": scope["path"],
            "request_id": request_id,
        }
    ).encode()


def route_label(scope: Scope) -> str:
    """The matched route's template (``/v1/campaigns/{campaign_id}``), never the raw
    path, so metric labels stay bounded; set by the router once it matched."""
    # path_format: the template without convertors (``{campaign_id:uuid}``, kit.routing).
    path = getattr(scope.get("route"), "path_format", None)
    return path if isinstance(path, str) and path else metrics.UNMATCHED_ROUTE


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(scope["headers"])
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        client = scope.get("client")
        token = current_request.set(RequestInfo(request_id, client[0] if client else None))
        started = time.perf_counter()
        metrics.HTTP_IN_FLIGHT.inc()
        status_holder = [500]
        response_started = [False]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                response_started[0] = True
                status_holder[0] = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                headers.extend(_SECURITY_HEADERS)
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, self._limited(scope, receive), send_with_headers)
        except Exception as exc:
            # The trace goes to the log; the client gets the request id, nothing more.
            access_log.exception("unhandled error", exc_info=exc)
            report_request_error(exc, request_id=request_id, user_id=state.get("user_id"))
            if not response_started[0]:
                await send_with_headers(_internal_error_start())
                await send_with_headers(
                    {"type": "http.response.body", "body": _internal_error_body(request_id, scope)}
                )
        finally:
            elapsed = time.perf_counter() - started
            method, route = metrics.method_label(scope["method"]), route_label(scope)
            metrics.HTTP_REQUESTS.labels(method, route, str(status_holder[0])).inc()
            metrics.HTTP_DURATION.labels(method, route).observe(elapsed)
            metrics.HTTP_IN_FLIGHT.dec()
            access_log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                status=status_holder[0],
                duration_ms=round(elapsed * 1000, 2),
                user_id=state.get("user_id"),
            )
            structlog.contextvars.clear_contextvars()
            current_request.reset(token)

    def _limited(self, scope: Scope, receive: Receive) -> Receive:
        limit = self.max_body_bytes
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                raise_size = True
                break
        else:
            raise_size = False
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            if raise_size:
                raise HTTPException(413, f"the request body is larger than {limit} bytes")
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, f"the request body is larger than {limit} bytes")
            return message

        return limited_receive

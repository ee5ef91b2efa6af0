"""``Idempotency-Key`` for POST endpoints, with Stripe's semantics.

* same key + same request → the stored status and body are replayed
  (header ``Idempotent-Replayed: true``);
* same key + another request → 422 ``idempotency_key_reused``;
* same key while the first request still runs → 409 ``idempotency_key_in_flight``
  on PostgreSQL (``pg_try_advisory_xact_lock``); SQLite serialises writers, so
  there the second request waits and replays;
* only a successful response is stored, in the same transaction as the work:
  a request that fails (validation, 402, …) stores nothing and rolls back, so a
  corrected retry with the same key is processed.

The response is captured by :class:`IdempotentRoute` after the endpoint has
returned and before the session dependency commits.
"""

import hashlib
import re
from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from sqlalchemy import delete, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.kit.clock import utcnow
from outreach.kit.db import SessionDep
from outreach.kit.errors import AppError, BadRequest, Conflict, Unprocessable
from outreach.kit.openapi import declares_problems, documents_parameters
from outreach.kit.routing import ApiRoute
from outreach.kit.tables import IdempotencyKey

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
# Printable ASCII (a UUID, say): what a header carries unchanged through every proxy.
_KEY_PATTERN = re.compile(rf"[ -~]{{1,{MAX_KEY_LENGTH}}}")
_STORED_HEADERS = ("content-type", "location")


class IdempotencyKeyMissing(AppError):
    status, code, title = 400, "idempotency_key_missing", "Idempotency-Key header required"


class IdempotencyKeyInvalid(BadRequest):
    code, title = "idempotency_key_invalid", "Invalid Idempotency-Key header"


class IdempotencyKeyReused(Unprocessable):
    code, title = "idempotency_key_reused", "Idempotency-Key reused with another request"


class IdempotencyKeyInFlight(Conflict):
    code, title = "idempotency_key_in_flight", "A request with this Idempotency-Key is running"


class IdempotentReplay(Exception):
    """Raised to answer with the stored response instead of running the endpoint."""

    def __init__(self, stored: IdempotencyKey) -> None:
        # Plain values: the session is rolled back before the replay is rendered.
        self.status = stored.response_status
        self.body = stored.response_body.encode()
        self.headers = dict(stored.response_headers)

    def to_response(self) -> Response:
        headers = {k: v for k, v in self.headers.items() if k != "content-type"}
        headers["Idempotent-Replayed"] = "true"
        return Response(
            content=self.body,
            status_code=self.status,
            headers=headers,
            media_type=self.headers.get("content-type"),
        )


class IdempotencyContext:
    """The claimed key of one request; :class:`IdempotentRoute` stores its response."""

    def __init__(
        self, session: AsyncSession, *, scope: str, key: str, request_hash: str, ttl: timedelta
    ) -> None:
        self.session = session
        self.scope = scope
        self.key = key
        self.request_hash = request_hash
        self.ttl = ttl

    async def store(self, response: Response) -> None:
        self.session.add(
            IdempotencyKey(
                scope=self.scope,
                key=self.key,
                request_hash=self.request_hash,
                response_status=response.status_code,
                response_body=bytes(response.body).decode(),
                response_headers={
                    name: response.headers[name]
                    for name in _STORED_HEADERS
                    if name in response.headers
                },
                expires_at=utcnow() + self.ttl,
            )
        )
        await self.session.flush()


def _advisory_lock_id(scope: str, key: str) -> int:
    digest = hashlib.sha256(f"{scope}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def _request_hash(request: Request) -> str:
    body = await request.body()
    digest = hashlib.sha256()
    digest.update(request.method.encode())
    digest.update(request.url.path.encode())
    digest.update(request.url.query.encode())
    digest.update(b"\x00")
    digest.update(body)
    return digest.hexdigest()


async def claim_idempotency_key(
    request: Request,
    session: AsyncSession,
    *,
    caller: str,
    required: bool,
    ttl: timedelta,
    request_hash: str | None = None,
) -> IdempotencyContext | None:
    """Check the request's key; replay, refuse, or claim it for this transaction.

    ``request_hash`` stands for the request's own (method, path, query, body) when the
    body was already read as a form: a web page hashes the fields it submitted."""
    key = request.headers.get(HEADER)
    if key is None:
        if required:
            raise IdempotencyKeyMissing(f"send an {HEADER} header with this request")
        return None
    if not _KEY_PATTERN.fullmatch(key):
        raise IdempotencyKeyInvalid(
            f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters"
        )
    scope = f"{caller}:{request.method}:{request.url.path}"
    if session.get_bind().dialect.name == "postgresql":
        locked = await session.scalar(
            text("SELECT pg_try_advisory_xact_lock(:lock_id)"),
            {"lock_id": _advisory_lock_id(scope, key)},
        )
        if not locked:
            raise IdempotencyKeyInFlight("retry once the first request has finished")
    request_hash = request_hash or await _request_hash(request)
    stored = await session.scalar(
        select(IdempotencyKey).where(IdempotencyKey.scope == scope, IdempotencyKey.key == key)
    )
    if stored is not None and stored.expires_at <= utcnow():
        await session.delete(stored)
        await session.flush()
        stored = None
    if stored is not None:
        if stored.request_hash != request_hash:
            raise IdempotencyKeyReused(
                "this Idempotency-Key was used with a different request; use a new key"
            )
        raise IdempotentReplay(stored)
    context = IdempotencyContext(session, scope=scope, key=key, request_hash=request_hash, ttl=ttl)
    request.state.idempotency = context
    return context


class IdempotentRoute(ApiRoute):
    """Stores a successful response of an endpoint that claimed an idempotency key.

    Every router uses this class, so it is also an :class:`ApiRoute` (UUID-only id
    segments, no NUL characters in text).
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def store_response(request: Request) -> Response:
            response = await handler(request)
            context: IdempotencyContext | None = getattr(request.state, "idempotency", None)
            if context is not None and 200 <= response.status_code < 300:
                await context.store(response)
            return response

        return store_response


async def delete_expired_keys(session: AsyncSession) -> int:
    """Remove stored responses past their time to live; returns how many."""
    result = await session.execute(
        delete(IdempotencyKey).where(IdempotencyKey.expires_at <= utcnow())
    )
    return int(getattr(result, "rowcount", 0) or 0)


def _documented_header(*, required: bool) -> dict[str, Any]:
    # Documented here rather than by FastAPI: the dependency checks the header itself
    # and answers idempotency_key_missing / _invalid (400), not a 422.
    description = (
        "Makes a retry of this request safe: the same key and body replay the first "
        "response; the same key with another body is refused (422)."
    )
    return {
        "name": HEADER,
        "in": "header",
        "required": required,
        "description": description + (" Required." if required else ""),
        "schema": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_KEY_LENGTH,
            "pattern": "^[ -~]+$",
        },
    }


def idempotency_dependency(
    *, required: bool, caller: Callable[..., Awaitable[str]] | Callable[..., str]
) -> Any:
    """A dependency claiming the request's ``Idempotency-Key``; ``caller`` scopes keys."""

    # Missing or invalid key 400, in flight 409 (PostgreSQL), reused with another body 422.
    @declares_problems(400, 409, 422)
    @documents_parameters(_documented_header(required=required))
    async def dependency(
        request: Request, session: SessionDep, caller_scope: Annotated[str, Depends(caller)]
    ) -> IdempotencyContext | None:
        settings = request.app.state.settings
        return await claim_idempotency_key(
            request,
            session,
            caller=caller_scope,
            required=required,
            ttl=timedelta(hours=settings.idempotency_ttl_hours),
        )

    return Depends(dependency)


def replay_handler(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, IdempotentReplay)
    return exc.to_response()

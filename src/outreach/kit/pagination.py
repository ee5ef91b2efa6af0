"""Cursor pagination: ``?limit=&cursor=`` → ``{"items": [...], "next_cursor": ...}``.

Lists are ordered newest first by ``(created_at, id)``; the cursor is the
position of the last item returned, signed so a tampered cursor is a 400
rather than a strange page.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query, Request
from pydantic import BaseModel
from sqlalchemy import Select, and_, or_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from outreach.kit.errors import BadRequest
from outreach.kit.openapi import declares_problems
from outreach.kit.signing import b64url_decode, b64url_encode

T = TypeVar("T")
MAX_LIMIT = 200
DEFAULT_LIMIT = 50


class InvalidCursor(BadRequest):
    code, title = "invalid_cursor", "Invalid pagination cursor"


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


@dataclass(frozen=True)
class Pagination:
    limit: int
    after: tuple[datetime, uuid.UUID] | None
    signing_key: bytes

    def encode(self, created_at: datetime, row_id: uuid.UUID) -> str:
        payload = json.dumps({"t": created_at.isoformat(), "i": str(row_id)}).encode()
        body = b64url_encode(payload).encode()
        return (body + b"." + _signature(self.signing_key, body)).decode()


def _signature(key: bytes, body: bytes) -> bytes:
    digest = hmac.new(key, b"cursor:" + body, hashlib.sha256).digest()[:12]
    return b64url_encode(digest).encode()


def decode_cursor(cursor: str, signing_key: bytes) -> tuple[datetime, uuid.UUID]:
    try:
        body, signature = cursor.encode("ascii").split(b".", 1)
        if not hmac.compare_digest(signature, _signature(signing_key, body)):
            raise ValueError("bad signature")
        data = json.loads(b64url_decode(body.decode("ascii")))
        return datetime.fromisoformat(data["t"]), uuid.UUID(data["i"])
    except (ValueError, KeyError, TypeError, UnicodeError) as exc:
        raise InvalidCursor("the cursor is not one this API returned") from exc


@declares_problems(400)  # invalid_cursor
def get_pagination(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> Pagination:
    key = request.app.state.settings.secret_key.get_secret_value().encode()
    after = decode_cursor(cursor, key) if cursor else None
    return Pagination(limit=limit, after=after, signing_key=key)


PaginationDep = Annotated[Pagination, Depends(get_pagination)]


async def paginate(
    session: AsyncSession,
    statement: Select[Any],
    pagination: Pagination,
    *,
    created_at: InstrumentedAttribute[datetime],
    id_column: InstrumentedAttribute[uuid.UUID],
) -> tuple[list[Any], str | None]:
    """Run ``statement`` for one page, newest first; returns the rows and the next cursor."""
    if pagination.after is not None:
        at, after_id = pagination.after
        statement = statement.where(
            or_(created_at < at, and_(created_at == at, id_column < after_id))
        )
    statement = statement.order_by(created_at.desc(), id_column.desc()).limit(pagination.limit + 1)
    rows = list((await session.scalars(statement)).all())
    if len(rows) <= pagination.limit:
        return rows, None
    rows = rows[: pagination.limit]
    last = rows[-1]
    return rows, pagination.encode(getattr(last, created_at.key), getattr(last, id_column.key))

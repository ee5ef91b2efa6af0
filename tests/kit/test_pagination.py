import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.kit.errors import BadRequest
from outreach.kit.pagination import Pagination, decode_cursor, paginate
from outreach.models import AuditLog

KEY = b"k" * 32


async def _seed(session: AsyncSession, count: int) -> list[AuditLog]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = []
    for index in range(count):
        # Pairs share a timestamp so the id breaks ties.
        row = AuditLog(
            action="test.page", actor_id=None, created_at=start + timedelta(minutes=index // 2)
        )
        session.add(row)
        rows.append(row)
    await session.flush()
    return rows


async def test_pages_cover_every_row_once_newest_first(session: AsyncSession) -> None:
    rows = await _seed(session, 11)
    statement = select(AuditLog).where(AuditLog.action == "test.page")
    seen: list[uuid.UUID] = []
    after = None
    while True:
        page, cursor = await paginate(
            session,
            statement,
            Pagination(limit=4, after=after, signing_key=KEY),
            created_at=AuditLog.created_at,
            id_column=AuditLog.id,
        )
        seen.extend(row.id for row in page)
        if cursor is None:
            break
        after = decode_cursor(cursor, KEY)
    expected = sorted(rows, key=lambda r: (r.created_at, r.id), reverse=True)
    assert seen == [row.id for row in expected]


@pytest.mark.parametrize("cursor", ["garbage", "a.b", "", "eyJ0IjogMX0.AAAA"])
def test_tampered_cursor_is_400(cursor: str) -> None:
    with pytest.raises(BadRequest) as caught:
        decode_cursor(cursor, KEY)
    assert caught.value.code == "invalid_cursor"


def test_cursor_signed_with_another_key_is_rejected() -> None:
    cursor = Pagination(limit=1, after=None, signing_key=b"other" * 8).encode(
        datetime(2026, 1, 1, tzinfo=UTC), uuid.uuid4()
    )
    with pytest.raises(BadRequest):
        decode_cursor(cursor, KEY)

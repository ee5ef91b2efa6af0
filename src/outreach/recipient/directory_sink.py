"""Storing an admin's directory import: the sink the import machinery writes mapped
rows of a ``directory`` list into (``importing._sink_for``). Apart from
``directory.py`` because the directory service uses the importer, and the
importer this sink: one module each way would be a cycle."""

from __future__ import annotations

import uuid
from typing import cast

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.kit.clock import utcnow
from outreach.kit.db import dialect_insert
from outreach.models import RecipientList, SystemRecipient
from outreach.recipient.mapping import MappedRow, RowError

_system = cast(Table, SystemRecipient.__table__)
_UPDATED = (
    "company",
    "contact_name",
    "title",
    "domain",
    "industry",
    "location",
    "source",
    "updated_at",
)


class DirectorySink:
    """Stores mapped rows of an admin import: new addresses added, known ones updated."""

    def __init__(self, recipient_list: RecipientList) -> None:
        self.list = recipient_list
        self.errors: list[RowError] = []

    async def store(self, session: AsyncSession, rows: list[MappedRow]) -> tuple[int, int, int]:
        now = utcnow()
        values = []
        for row in rows:
            assert row.address is not None
            f = row.fields
            values.append(
                {
                    "id": uuid.uuid4(),
                    "created_at": now,
                    "updated_at": now,
                    "email": row.address.email,
                    "domain": (f.get("domain") or row.address.domain).lower()[:255],
                    "company": f.get("company"),
                    "contact_name": f.get("name"),
                    "title": f.get("title"),
                    "industry": f.get("industry"),
                    "location": f.get("location"),
                    "source": f.get("source") or f"import:{self.list.file_name}"[:200],
                    "verification_status": "unverified",
                    "verification_reasons": [],
                }
            )
        if not values:
            return 0, 0, 0
        statement = dialect_insert(session)(_system)
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=["email"],
                set_={name: statement.excluded[name] for name in _UPDATED},
            ),
            values,
        )
        return len(values), 0, 0

"""Suppressions: addresses and whole domains a user (or, for a global entry, no
one) may mail. Checked with one query on the unique (owner_key, value) index,
for one address or a whole batch."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Select, Table, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.kit.audit import record_audit
from outreach.kit.clock import utcnow
from outreach.kit.db import dialect_insert, in_batches
from outreach.kit.errors import FieldError, NotFound, Unprocessable
from outreach.kit.pagination import Pagination, paginate
from outreach.models import GLOBAL_OWNER, Suppression, SuppressionReason, SuppressionScope
from outreach.recipient.addresses import InvalidAddress, normalise_domain, normalise_email


class SuppressionNotFound(NotFound):
    code, title = "suppression_not_found", "Suppression not found"


class InvalidSuppressionValue(Unprocessable):
    code, title = "invalid_suppression", "Not an email address or domain"


@dataclass(frozen=True)
class SuppressionEntry:
    kind: str  # email | domain
    value: str
    reason: str


def owner_key(user_id: uuid.UUID | None) -> str:
    return GLOBAL_OWNER if user_id is None else str(user_id)


def parse_suppression_value(raw: str) -> tuple[str, str]:
    """``("email", address)`` or ``("domain", domain)``; raises InvalidAddress."""
    text = raw.strip()
    if "@" in text.lstrip("@"):
        return "email", normalise_email(text).email
    return "domain", normalise_domain(text)


class SuppressionService:
    async def is_suppressed(self, session: AsyncSession, *, user_id: uuid.UUID, email: str) -> bool:
        """Whether ``email`` (normalised) or its domain is suppressed for the user or globally."""
        return bool(await self.suppressed_among(session, user_id=user_id, emails=[email]))

    async def suppressed_among(
        self, session: AsyncSession, *, user_id: uuid.UUID, emails: Collection[str]
    ) -> set[str]:
        """The normalised ``emails`` that are suppressed, in one query per
        ``IN_LIST_MAX`` addresses and domains (a campaign may have 100,000)."""
        if not emails:
            return set()
        domains = {email.rsplit("@", 1)[-1] for email in emails}
        hits: set[str] = set()
        for values in in_batches(set(emails) | domains):
            hits.update(
                await session.scalars(
                    select(Suppression.value).where(
                        Suppression.owner_key.in_([str(user_id), GLOBAL_OWNER]),
                        Suppression.value.in_(values),
                    )
                )
            )
        return {e for e in emails if e in hits or e.rsplit("@", 1)[-1] in hits}

    async def add(
        self,
        session: AsyncSession,
        *,
        user_id: uuid.UUID | None,
        value: str,
        reason: SuppressionReason,
        source: str | None,
        actor_id: uuid.UUID | None = None,
    ) -> Suppression:
        """Suppress an address or domain (``user_id=None``: for everyone); idempotent."""
        try:
            kind, normalised = parse_suppression_value(value)
        except InvalidAddress as exc:
            raise InvalidSuppressionValue(
                str(exc), errors=[FieldError(loc=["body", "value"], message=str(exc))]
            ) from exc
        await self.add_many(
            session,
            user_id=user_id,
            entries=[SuppressionEntry(kind, normalised, reason.value)],
            source=source,
        )
        suppression = await session.scalar(
            select(Suppression).where(
                Suppression.owner_key == owner_key(user_id), Suppression.value == normalised
            )
        )
        assert suppression is not None
        if user_id is None:
            await record_audit(
                session,
                action="suppression.global_added",
                actor_id=actor_id,
                target_type="suppression",
                target_id=suppression.id,
                details={"value": normalised, "reason": reason.value},
            )
        return suppression

    async def add_many(
        self,
        session: AsyncSession,
        *,
        user_id: uuid.UUID | None,
        entries: Iterable[SuppressionEntry],
        source: str | None,
    ) -> int:
        """Insert entries not present yet (one statement); returns how many were new."""
        key = owner_key(user_id)
        now = utcnow()
        scope = SuppressionScope.global_ if user_id is None else SuppressionScope.user
        rows = {
            entry.value: {
                "id": uuid.uuid4(),
                "created_at": now,
                "owner_key": key,
                "scope": scope.value,
                "user_id": user_id,
                "kind": entry.kind,
                "value": entry.value,
                "reason": entry.reason,
                "source": source[:100] if source else None,
            }
            for entry in entries
        }
        if not rows:
            return 0
        table = cast(Table, Suppression.__table__)
        result = await session.execute(
            dialect_insert(session)(table)
            .on_conflict_do_nothing(index_elements=["owner_key", "value"])
            .returning(table.c.id),
            list(rows.values()),
        )
        return len(result.all())

    async def remove(
        self,
        session: AsyncSession,
        *,
        user_id: uuid.UUID | None,
        suppression_id: uuid.UUID,
        actor_id: uuid.UUID | None = None,
    ) -> None:
        """Delete one of the owner's suppressions (another owner's is not found)."""
        deleted = await session.execute(
            delete(Suppression)
            .where(Suppression.id == suppression_id, Suppression.owner_key == owner_key(user_id))
            .returning(Suppression.value)
        )
        value = deleted.scalar()
        if value is None:
            raise SuppressionNotFound("no such suppression")
        if user_id is None:
            await record_audit(
                session,
                action="suppression.global_removed",
                actor_id=actor_id,
                target_type="suppression",
                target_id=suppression_id,
                details={"value": value},
            )

    def readable_statement(self, user_id: uuid.UUID | None) -> Select[Suppression]:
        return select(Suppression).where(Suppression.owner_key == owner_key(user_id))

    async def list_suppressions(
        self,
        session: AsyncSession,
        *,
        user_id: uuid.UUID | None,
        pagination: Pagination,
        search: str | None = None,
        reason: SuppressionReason | None = None,
    ) -> tuple[list[Suppression], str | None]:
        """The owner's suppressions, newest first."""
        statement = self.readable_statement(user_id)
        if search:
            pattern = f"%{search.lower()}%"
            statement = statement.where(or_(func.lower(Suppression.value).like(pattern)))
        if reason is not None:
            statement = statement.where(Suppression.reason == reason.value)
        return await paginate(
            session,
            statement,
            pagination,
            created_at=Suppression.created_at,
            id_column=Suppression.id,
        )


suppression_service = SuppressionService()

"""Account data rights: export everything held about a user, and delete the account.

Deletion takes two requests: the first answers a confirmation token (signed,
stateless, valid 10 minutes, bound to the user and to the session that asked),
the second, carrying it, deletes. See :mod:`outreach.account.erasure` for what
is deleted and what is kept anonymised.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import timedelta
from typing import IO

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from outreach.account.erasure import erase_account, record_deletion
from outreach.account.export import ExportSummary, build_export
from outreach.account.schemas import AccountDeleted, DeletionConfirmation, DeletionPreview
from outreach.config import get_settings
from outreach.credits.service import credit_service
from outreach.kit.audit import record_audit
from outreach.kit.clock import utcnow
from outreach.kit.errors import FieldError, Unprocessable
from outreach.kit.jobs import enqueue_after_commit
from outreach.kit.signing import InvalidSignature, sign, unsign
from outreach.kit.storage import Storage
from outreach.models import (
    Campaign,
    EmailStatus,
    Mailbox,
    RecipientList,
    Resume,
    ScheduledEmail,
    Template,
    User,
)

CONFIRMATION_PURPOSE = "account-deletion"
CONFIRMATION_TTL = timedelta(minutes=10)
_UNSENT = (
    EmailStatus.waiting,
    EmailStatus.pending,
    EmailStatus.ready,
    EmailStatus.awaiting_approval,
)


class DeletionConfirmationInvalid(Unprocessable):
    code, title = "deletion_confirmation_invalid", "Not a deletion confirmation for this session"


class DeletionConfirmationExpired(Unprocessable):
    code, title = "deletion_confirmation_expired", "The deletion confirmation has expired"


def _session_fingerprint(session_token: str) -> str:
    return hashlib.sha256(session_token.encode()).hexdigest()[:32]


def _confirm_error(kind: type[Unprocessable], message: str) -> Unprocessable:
    return kind(message, errors=[FieldError(loc=["query", "confirm"], message=message)])


class AccountService:
    async def export(
        self, session: AsyncSession, *, storage: Storage, user: User
    ) -> tuple[IO[bytes], ExportSummary]:
        """A ZIP of everything held about the user (audited); the caller closes it."""
        archive, summary = await build_export(session, storage=storage, user=user)
        await record_audit(
            session,
            action="account.exported",
            actor_id=user.id,
            target_type="user",
            target_id=user.id,
            details={"rows": sum(summary.counts.values()), "files": len(summary.files)},
        )
        return archive, summary

    async def request_deletion(
        self, session: AsyncSession, *, user: User, session_token: str
    ) -> DeletionConfirmation:
        """The first step: what would go, and a token that confirms it for 10 minutes."""
        expires_at = utcnow() + CONFIRMATION_TTL
        payload = {
            "user": str(user.id),
            "session": _session_fingerprint(session_token),
            "expires": int(expires_at.timestamp()),
        }
        token = sign(payload, secret=self._secret(), purpose=CONFIRMATION_PURPOSE)
        await record_audit(
            session,
            action="account.deletion_requested",
            actor_id=user.id,
            target_type="user",
            target_id=user.id,
        )
        return DeletionConfirmation(
            confirmation_token=token,
            expires_at=expires_at,
            preview=await self._preview(session, user),
        )

    async def delete_account(
        self, session: AsyncSession, *, user: User, session_token: str, confirmation: str
    ) -> AccountDeleted:
        """The second step: check the token, then erase in this one transaction.
        Stored files are deleted by a job once it has committed."""
        self._check_confirmation(user, session_token, confirmation)
        erasure = await erase_account(session, user=user)
        await record_deletion(session, user_id=user.id, erasure=erasure)
        if erasure.file_keys:
            enqueue_after_commit(session, "account.delete_stored_files", keys=erasure.file_keys)
        return AccountDeleted(
            deleted_at=utcnow(),
            mailboxes_revoked=erasure.mailboxes_revoked,
            emails_cancelled=erasure.emails_cancelled,
            credits_refunded=erasure.credits_refunded,
            credits_forfeited=erasure.credits_forfeited,
            files_deleted=len(erasure.file_keys),
        )

    def _check_confirmation(self, user: User, session_token: str, confirmation: str) -> None:
        try:
            payload = unsign(confirmation, secret=self._secret(), purpose=CONFIRMATION_PURPOSE)
        except InvalidSignature as exc:
            raise _confirm_error(
                DeletionConfirmationInvalid, "this is not a deletion confirmation token"
            ) from exc
        fingerprint = _session_fingerprint(session_token)
        if payload.get("user") != str(user.id) or not hmac.compare_digest(
            str(payload.get("session", "")), fingerprint
        ):
            raise _confirm_error(
                DeletionConfirmationInvalid, "the token was issued to another session; ask again"
            )
        expires = payload.get("expires")
        if not isinstance(expires, int) or utcnow().timestamp() > expires:
            raise _confirm_error(
                DeletionConfirmationExpired, "the token has expired; ask for a new one"
            )

    async def _preview(self, session: AsyncSession, user: User) -> DeletionPreview:
        async def count(
            owner: InstrumentedAttribute[uuid.UUID], *where: ColumnElement[bool]
        ) -> int:
            statement = select(func.count()).where(owner == user.id, *where)
            return int(await session.scalar(statement) or 0)

        return DeletionPreview(
            mailboxes=await count(Mailbox.user_id),
            campaigns=await count(Campaign.user_id),
            unsent_emails=await count(ScheduledEmail.user_id, ScheduledEmail.status.in_(_UNSENT)),
            recipient_lists=await count(RecipientList.user_id),
            templates=await count(Template.user_id),
            resumes=await count(Resume.user_id),
            credit_balance=await credit_service.get_balance(session, user_id=user.id),
        )

    @staticmethod
    def _secret() -> str:
        return get_settings().secret_key.get_secret_value()


account_service = AccountService()

"""Account deletion: what is deleted, what is kept anonymised, and how.

Every table holding a user's rows is named here (``HANDLED_TABLES``; a test
fails when a new table with a ``user_id`` is not), so a reviewer can check the
whole of an erasure in one file. Behaviour that belongs to a domain goes
through its service: refunds through the campaign service and the ledger,
Gmail revocation through the mailbox service.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Text, cast, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.account.identity import anonymised_email, deleted_before, is_deleted
from outreach.campaign.operations import campaign_operations
from outreach.credits.service import credit_service
from outreach.kit.audit import record_audit
from outreach.kit.errors import Conflict
from outreach.mailbox.service import mailbox_service
from outreach.models import (
    AuditLog,
    Campaign,
    EmailVerification,
    FailedJob,
    IdempotencyKey,
    LedgerEntry,
    LedgerReason,
    Mailbox,
    PaymentOrder,
    Recipient,
    RecipientImportError,
    RecipientList,
    Resume,
    ResumeAnalysis,
    Suppression,
    Template,
    TemplateVersion,
    User,
    UserRole,
    UserSession,
    VerificationJob,
    WebhookEvent,
)

REDACTED = "[deleted]"
# Fields of a stored payment webhook that describe the payer, not the payment.
_PAYER_FIELDS = frozenset({"email", "contact", "name", "vpa", "card", "bank_account", "upi"})

# Tables with the user's rows, and what deletion does with them.
HANDLED_TABLES = {
    "users": "kept, anonymised (no email, name, picture, Google id or referral code)",
    "credit_accounts": "kept (balance brought to 0 by an account_deleted ledger entry)",
    "ledger_entries": "kept (amounts, dates, ids); free-text refs removed",
    "payment_orders": "kept (amounts, dates, Razorpay ids)",
    "webhook_events": "kept; payer details removed from the stored bodies",
    "referral_rewards": "kept (ids, credits, dates)",
    "audit_logs": "kept; the user's addresses and IPs removed",
    "sessions": "deleted",
    "mailboxes": "Gmail grants revoked at Google, then deleted with their tokens",
    "campaigns": "unsent emails cancelled and refunded, then deleted",
    "scheduled_emails": "deleted",
    "campaign_steps": "deleted with their campaigns",
    "email_events": "deleted with their campaigns (replies, bounces, unsubscribes)",
    "templates": "deleted",
    "template_versions": "deleted",
    "resumes": "deleted, with their files and analyses",
    "resume_analyses": "deleted",
    "recipient_lists": "deleted, with their files, recipients and import errors",
    "recipients": "deleted",
    "recipient_import_errors": "deleted",
    "suppressions": "the user's own list deleted (global entries stay)",
    "verification_jobs": "deleted",
    "email_verifications": "deleted",
}


class AccountAlreadyDeleted(Conflict):
    code, title = "account_deleted", "The account has been deleted"


class EmailsInFlight(Conflict):
    code, title = "emails_in_flight", "An email is being sent right now"


@dataclass
class Erasure:
    mailboxes_revoked: int = 0
    emails_cancelled: int = 0
    credits_refunded: int = 0
    credits_forfeited: int = 0
    file_keys: list[str] = field(default_factory=list)


def _redact_text(text: str, needles: list[str]) -> str:
    for needle in needles:
        text = re.sub(re.escape(needle), REDACTED, text, flags=re.IGNORECASE)
    return text


def redact(value: Any, needles: list[str]) -> Any:
    """``value`` (JSON) with every occurrence of ``needles`` replaced, at any depth."""
    if isinstance(value, str):
        return _redact_text(value, needles)
    if isinstance(value, list):
        return [redact(item, needles) for item in value]
    if isinstance(value, dict):
        return {_redact_text(k, needles): redact(v, needles) for k, v in value.items()}
    return value


def _without_payer(value: Any) -> Any:
    if isinstance(value, list):
        return [_without_payer(item) for item in value]
    if isinstance(value, dict):
        return {
            key: REDACTED if key in _PAYER_FIELDS else _without_payer(item)
            for key, item in value.items()
        }
    return value


async def erase_account(session: AsyncSession, *, user: User) -> Erasure:
    """Delete the user's personal data and keep, anonymised, what the law requires.

    Runs in the caller's transaction: all of it happens, or none of it. Stored
    files are returned (``file_keys``) to be deleted once the transaction commits.
    """
    # The user row first: a second deletion racing this one waits, then finds it done.
    await session.refresh(user, with_for_update=True)
    if is_deleted(user):
        raise AccountAlreadyDeleted("this account has been deleted")
    # Then the mailboxes: the sender claims no new email from them meanwhile.
    mailboxes = await mailbox_service.lock_user_mailboxes(session, user=user)
    if await campaign_operations.emails_in_flight(session, user_id=user.id):
        raise EmailsInFlight("an email is being sent right now; try again in a few minutes")
    needles = sorted(
        {user.email, *(m.address for m in mailboxes), *(m.smtp_username or "" for m in mailboxes)}
        - {""},
        key=len,
        reverse=True,
    )
    owned_ids = await _owned_ids(session, user.id, mailboxes)
    erasure = Erasure()
    await _close_credits(session, user, erasure)
    erasure.mailboxes_revoked = await mailbox_service.erase_user_mailboxes(session, user=user)
    erasure.file_keys = await _delete_personal_rows(session, user.id)
    await _scrub_failed_jobs(session, [*needles, str(user.id), *owned_ids], since=user.created_at)
    await _scrub_payments(session, user.id, needles)
    await _anonymise_user(session, user)
    await _scrub_audit_logs(session, user.id, owned_ids, needles)
    return erasure


async def _owned_ids(
    session: AsyncSession, user_id: uuid.UUID, mailboxes: list[Mailbox]
) -> list[str]:
    """Ids of the user's things that audit rows and failed jobs may name."""
    ids = [str(m.id) for m in mailboxes]
    for model in (Resume, RecipientList, Template, PaymentOrder, Campaign):
        found = await session.scalars(select(model.id).where(model.user_id == user_id))
        ids += [str(i) for i in found]
    return ids


async def _close_credits(session: AsyncSession, user: User, erasure: Erasure) -> None:
    """Unsent emails are cancelled and refunded; what is left is forfeited, so the
    ledger tells the whole story and the balance ends at 0."""
    before = await credit_service.get_balance(session, user_id=user.id)
    erasure.emails_cancelled = await campaign_operations.close_for_account_deletion(
        session, user_id=user.id
    )
    balance = await credit_service.get_balance(session, user_id=user.id)
    erasure.credits_refunded = balance - before
    if balance > 0:
        await credit_service.apply_ledger_entry(
            session,
            user_id=user.id,
            delta=-balance,
            reason=LedgerReason.account_deleted,
            ref=None,
            idempotency_key=f"account-deleted:{user.id}",
        )
    erasure.credits_forfeited = balance


async def _delete_personal_rows(session: AsyncSession, user_id: uuid.UUID) -> list[str]:
    """Delete everything the user made; returns the storage keys of their files."""
    keys = list(await session.scalars(select(Resume.file_key).where(Resume.user_id == user_id)))
    keys += [
        key
        for key in await session.scalars(
            select(RecipientList.file_key).where(RecipientList.user_id == user_id)
        )
        if key
    ]
    lists = select(RecipientList.id).where(RecipientList.user_id == user_id)
    templates = select(Template.id).where(Template.user_id == user_id)
    for statement in (
        delete(ResumeAnalysis).where(ResumeAnalysis.user_id == user_id),
        delete(Resume).where(Resume.user_id == user_id),
        delete(EmailVerification).where(EmailVerification.user_id == user_id),
        delete(VerificationJob).where(VerificationJob.user_id == user_id),
        delete(RecipientImportError).where(RecipientImportError.list_id.in_(lists)),
        delete(Recipient).where(Recipient.user_id == user_id),
        delete(RecipientList).where(RecipientList.user_id == user_id),
        delete(Suppression).where(
            or_(Suppression.user_id == user_id, Suppression.owner_key == str(user_id))
        ),
        delete(TemplateVersion).where(TemplateVersion.template_id.in_(templates)),
        delete(Template).where(Template.user_id == user_id),
        delete(UserSession).where(UserSession.user_id == user_id),
        delete(IdempotencyKey).where(IdempotencyKey.scope.startswith(f"user:{user_id}:")),
    ):
        await session.execute(statement.execution_options(synchronize_session=False))
    return keys


async def _scrub_failed_jobs(session: AsyncSession, needles: list[str], *, since: datetime) -> None:
    """Dead letters naming the user or their things go: the work they describe is gone.
    Searched in the database, and only among rows written since the account was made
    (``created_at`` is indexed): nothing older can name the user."""
    texts = (
        func.lower(cast(FailedJob.args, Text)),
        func.lower(FailedJob.error),
        func.lower(FailedJob.traceback),
    )
    named = or_(*(text.contains(n.lower(), autoescape=True) for text in texts for n in needles))
    await session.execute(
        delete(FailedJob)
        .where(FailedJob.created_at >= since, named)
        .execution_options(synchronize_session=False)
    )


async def _scrub_payments(session: AsyncSession, user_id: uuid.UUID, needles: list[str]) -> None:
    """Payment rows stay (tax and accounting law); what identifies the payer goes."""
    orders = select(PaymentOrder.id).where(PaymentOrder.user_id == user_id)
    for event in await session.scalars(
        select(WebhookEvent).where(WebhookEvent.payment_order_id.in_(orders))
    ):
        try:
            body = redact(_without_payer(json.loads(event.raw_body)), needles)
        except ValueError:
            body = {}
        event.raw_body = json.dumps(body)
        if event.detail:
            event.detail = _redact_text(event.detail, needles)
    for order in await session.scalars(select(PaymentOrder).where(PaymentOrder.user_id == user_id)):
        if order.failure_reason:
            order.failure_reason = _redact_text(order.failure_reason, needles)
    # The AI template charge keeps the role typed by the user: free text goes.
    await session.execute(
        update(LedgerEntry)
        .where(LedgerEntry.user_id == user_id, LedgerEntry.reason == LedgerReason.ai_template)
        .values(ref=None)
        .execution_options(synchronize_session=False)
    )
    await session.flush()


async def _anonymise_user(session: AsyncSession, user: User) -> None:
    first = not await deleted_before(session, user.email)
    user.email = anonymised_email(user.email, user.id, first=first)
    user.name = None
    user.picture = None
    user.google_sub = None
    user.referral_code = None
    user.role = UserRole.user
    user.last_login_at = None
    await session.flush()


async def _scrub_audit_logs(
    session: AsyncSession, user_id: uuid.UUID, owned_ids: list[str], needles: list[str]
) -> None:
    """Audit rows stay (who did what, when); the user's addresses and IPs go.

    The rows are those the user acted in, and those about the user or one of their
    things (a mailbox row carries its address), each found by index (``actor_id``,
    ``target_id``), never by reading the table: every audit row that names an
    address targets the thing it belongs to, or is the user's own action."""
    found: dict[uuid.UUID, AuditLog] = {}
    targets = [str(user_id), *owned_ids]
    lookups = [AuditLog.actor_id == user_id] + [
        AuditLog.target_id.in_(targets[start : start + 500])
        for start in range(0, len(targets), 500)
    ]
    for lookup in lookups:
        for row in await session.scalars(select(AuditLog).where(lookup)):
            found[row.id] = row
    for row in found.values():
        row.details = redact(row.details, needles)
        if row.actor_id == user_id:
            row.ip = None
    await session.flush()


async def record_deletion(session: AsyncSession, *, user_id: uuid.UUID, erasure: Erasure) -> None:
    """The last audit row of the account: counts only, and no IP (it would be personal)."""
    entry = await record_audit(
        session,
        action="account.deleted",
        actor_id=user_id,
        target_type="user",
        target_id=user_id,
        details={
            "mailboxes_revoked": erasure.mailboxes_revoked,
            "emails_cancelled": erasure.emails_cancelled,
            "credits_refunded": erasure.credits_refunded,
            "credits_forfeited": erasure.credits_forfeited,
            "files": len(erasure.file_keys),
        },
    )
    entry.ip = None
    await session.flush()

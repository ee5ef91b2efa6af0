"""The invariants every fault test ends with, whatever the fault was.

* **Money**: for every user, the credit balance equals the sum of their ledger
  entries and is never negative; each scheduled campaign was charged exactly
  its price per email, once (at scheduling, plus one charge per admin retry of
  a failed send, which adds an email).
* **Never twice**: no message was delivered twice by a provider (the fake
  Gmail's store, or the outbox's files), and no two emails share a provider id.
* **None lost**: every scheduled email is in exactly one of ``sent``,
  ``failed``, ``cancelled``, ``skipped`` (each of those three with its refund
  entry), ``unknown``, or still waiting (``waiting`` follow-ups, ``pending``,
  ``ready``, ``awaiting_approval``); an email marked ``sent`` was really delivered, and
  every delivered message belongs to an email marked ``sent`` (or ``unknown``,
  where the provider cannot tell us).
* **Stopped means stopped**: a recipient who replied, bounced or unsubscribed has no
  email of that campaign still waiting to go (all were cancelled and refunded).
* **None stalled**: every ``pending`` email of a live campaign has a next try:
  a planned one (``next_attempt_at``), or it changed less than
  ``prepare_stall_seconds`` ago (the tick's sweep looks at it then).

Rows are read as plain columns, never through the session's identity map, so
what is checked is what the database holds.
"""

from __future__ import annotations

import email
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from email import policy
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.campaign.replies import STOPPING, UNSENT
from outreach.config import get_settings
from outreach.credits.pricing import pricing_from_settings
from outreach.kit.clock import utcnow
from outreach.models import CreditAccount, EmailEvent, LedgerEntry, LedgerReason
from outreach.models.campaign import Campaign, CampaignStatus, EmailStatus, ScheduledEmail
from tests.fakes.gmail import FakeGmail

REFUNDED = frozenset({EmailStatus.failed, EmailStatus.cancelled, EmailStatus.skipped})
NOT_REFUNDED = frozenset({EmailStatus.sent, EmailStatus.unknown})
WAITING = frozenset(
    {EmailStatus.waiting, EmailStatus.pending, EmailStatus.ready, EmailStatus.awaiting_approval}
)


@dataclass(frozen=True)
class Summary:
    """What the checked database holds, for the test's own exact assertions."""

    balances: dict[uuid.UUID, int]
    statuses: Counter[EmailStatus]
    delivered: int


def gmail_deliveries(fake_gmail: FakeGmail) -> list[str]:
    """Our Message-ID of every message the fake Gmail sent (one entry per delivery)."""
    ids = []
    for address in list(fake_gmail.mailboxes):
        for message in fake_gmail.sent(address):
            parsed = message.parsed
            # Gmail may replace our Message-ID; it keeps the original in this header.
            ids.append(str(parsed["X-Google-Original-Message-ID"] or parsed["Message-ID"]))
    return ids


def outbox_deliveries(outbox_root: Path) -> list[str]:
    """The Message-ID of every sent ``.eml`` in the outbox (drafts are in ``drafts/``).

    A sent file is named after its Message-ID, so a second delivery would replace
    the first: here a duplicate shows as a sent file for an email not marked sent,
    or an email marked sent twice; the fake Gmail keeps every delivery apart."""
    ids = []
    for path in sorted(outbox_root.glob("*/*.eml")):
        parsed = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        ids.append(str(parsed["Message-ID"]))
    return ids


async def _check_ledger(session: AsyncSession) -> dict[uuid.UUID, int]:
    balances = dict(
        (await session.execute(select(CreditAccount.user_id, CreditAccount.balance))).all()
    )
    sums = dict(
        (
            await session.execute(
                select(LedgerEntry.user_id, func.sum(LedgerEntry.delta)).group_by(
                    LedgerEntry.user_id
                )
            )
        ).all()
    )
    for user_id in balances.keys() | sums.keys():
        balance, total = balances.get(user_id, 0), int(sums.get(user_id) or 0)
        assert balance == total, f"user {user_id}: balance {balance} != ledger sum {total}"
        assert balance >= 0, f"user {user_id}: negative balance {balance}"
    return balances


async def _check_emails(
    session: AsyncSession, delivered: list[str], waiting: frozenset[EmailStatus]
) -> Counter[EmailStatus]:
    price = pricing_from_settings(get_settings()).scheduled_email
    emails = (
        await session.execute(
            select(
                ScheduledEmail.id,
                ScheduledEmail.campaign_id,
                ScheduledEmail.status,
                ScheduledEmail.refunded,
                ScheduledEmail.rfc822_message_id,
                ScheduledEmail.provider_message_id,
            )
        )
    ).all()
    refunds = dict(
        (
            await session.execute(
                select(LedgerEntry.idempotency_key, LedgerEntry.delta).where(
                    LedgerEntry.idempotency_key.like("campaign-email:%:refund")
                )
            )
        ).all()
    )
    charges = dict(
        (
            await session.execute(
                select(LedgerEntry.idempotency_key, LedgerEntry.delta).where(
                    LedgerEntry.idempotency_key.like("campaign:%:schedule")
                )
            )
        ).all()
    )
    # An admin retry of a failed send charges again (keyed by the failed email) and
    # adds a new email to the campaign.
    retries = dict(
        (
            await session.execute(
                select(LedgerEntry.ref, func.sum(LedgerEntry.delta))
                .where(LedgerEntry.reason == LedgerReason.campaign_retry)
                .group_by(LedgerEntry.ref)
            )
        ).all()
    )
    statuses: Counter[EmailStatus] = Counter()
    per_campaign: Counter[uuid.UUID] = Counter()
    charged: Counter[uuid.UUID] = Counter()
    for email_id, campaign_id, status, refunded, _, _ in emails:
        statuses[status] += 1
        per_campaign[campaign_id] += 1
        charged[campaign_id] += int(retries.get(str(email_id)) or 0)
        refund = refunds.get(f"campaign-email:{email_id}:refund")
        if status in REFUNDED:
            assert refunded, f"email {email_id} is {status.value} but not refunded"
            assert refund == (price or None), f"email {email_id}: refund entry {refund}"
        elif status in NOT_REFUNDED or status in waiting:
            assert not refunded, f"email {email_id} {status.value} marked refunded"
            assert refund is None, f"email {email_id} {status.value} has a refund entry"
        else:
            raise AssertionError(f"email {email_id} left in {status.value}")
    for campaign_id, count in per_campaign.items():
        charged[campaign_id] += charges.get(f"campaign:{campaign_id}:schedule", 0)
        total = charged[campaign_id]
        assert total == -price * count, f"campaign {campaign_id}: {count} emails, charged {total}"

    copies = Counter(delivered)
    twice = [message_id for message_id, n in copies.items() if n > 1]
    assert not twice, f"delivered more than once: {twice}"
    provider_ids = Counter(p for *_, p in emails if p is not None)
    assert max(provider_ids.values(), default=0) <= 1, "two emails share a provider id"
    sent = {m for _, _, s, _, m, _ in emails if s == EmailStatus.sent}
    maybe_sent = {m for _, _, s, _, m, _ in emails if s in NOT_REFUNDED or s in waiting}
    assert sent <= copies.keys(), f"marked sent, never delivered: {sent - copies.keys()}"
    assert copies.keys() <= maybe_sent, f"delivered, not marked sent: {copies.keys() - maybe_sent}"
    return statuses


async def _check_stopped_sequences(session: AsyncSession) -> None:
    stopped = (
        select(EmailEvent.id)
        .where(
            EmailEvent.campaign_id == ScheduledEmail.campaign_id,
            EmailEvent.recipient_address == ScheduledEmail.to_address,
            EmailEvent.kind.in_(STOPPING),
        )
        .exists()
    )
    unsent = (
        await session.execute(
            select(ScheduledEmail.id, ScheduledEmail.to_address, ScheduledEmail.status).where(
                ScheduledEmail.status.in_(UNSENT), stopped
            )
        )
    ).all()
    assert not unsent, f"still to go after a reply, bounce or unsubscribe: {unsent}"


async def _check_next_attempts(session: AsyncSession) -> None:
    stall = timedelta(seconds=get_settings().prepare_stall_seconds)
    stalled = (
        await session.execute(
            select(ScheduledEmail.id, ScheduledEmail.updated_at)
            .join(Campaign, Campaign.id == ScheduledEmail.campaign_id)
            .where(
                ScheduledEmail.status == EmailStatus.pending,
                Campaign.status.in_([CampaignStatus.scheduled, CampaignStatus.sending]),
                ScheduledEmail.next_attempt_at.is_(None),
                ScheduledEmail.updated_at < utcnow() - stall,
            )
        )
    ).all()
    assert not stalled, f"pending with no next try: {stalled}"


async def check_invariants(
    session: AsyncSession, *, delivered: Iterable[str], in_flight: bool = False
) -> Summary:
    """Assert the invariants above; ``delivered`` holds one Message-ID per real delivery
    (:func:`gmail_deliveries`, :func:`outbox_deliveries`, or nothing). ``in_flight``
    also accepts emails still ``sending`` (claimed, outcome not yet reconciled): only
    for a check made while a fault still holds one."""
    delivered = list(delivered)
    balances = await _check_ledger(session)
    waiting = WAITING | {EmailStatus.sending} if in_flight else WAITING
    statuses = await _check_emails(session, delivered, waiting)
    await _check_stopped_sequences(session)
    await _check_next_attempts(session)
    return Summary(balances=balances, statuses=statuses, delivered=len(delivered))

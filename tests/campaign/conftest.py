"""Campaign fixtures: an outbox mailbox, a ready list, a template, a user with credits."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.config import Settings, use_settings
from outreach.kit import jobs
from outreach.kit.db import Database, set_database
from outreach.models import Mailbox, MailboxProvider, MailboxStatus, Recipient, User
from outreach.models.recipient_list import ListStatus, RecipientList
from outreach.template.schemas import TemplateCreate
from outreach.template.service import template_service


@pytest.fixture
def outbox_settings(settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    changed = settings.model_copy(
        update={"outbox_path": tmp_path / "outbox", "allow_outbox_mailboxes": True}
    )
    use_settings(changed)
    yield changed
    use_settings(settings)


@pytest.fixture
async def jobs_on(committing_database: Database, settings: Settings) -> AsyncIterator[None]:
    """Jobs (sent after commits) run inline against the committing database."""
    broker = jobs.create_broker(settings)
    await broker.startup()
    jobs.set_broker(broker)
    set_database(committing_database)
    yield
    set_database(None)
    jobs.set_broker(None)
    await broker.shutdown()


async def make_outbox_mailbox(
    session: AsyncSession,
    user: User,
    *,
    address: str = "me@example.com",
    cap: int = 250,
    timezone: str = "Asia/Kolkata",
) -> Mailbox:
    mailbox = Mailbox(
        user_id=user.id,
        provider=MailboxProvider.outbox,
        address=address,
        status=MailboxStatus.active,
        daily_cap=cap,
        timezone=timezone,
        granted_scopes=[],
    )
    session.add(mailbox)
    await session.flush()
    return mailbox


async def make_list(
    session: AsyncSession,
    user: User,
    rows: list[dict[str, Any]],
    *,
    status: ListStatus = ListStatus.ready,
) -> RecipientList:
    recipient_list = RecipientList(user_id=user.id, name="Targets", status=status)
    session.add(recipient_list)
    await session.flush()
    for position, row in enumerate(rows, start=2):
        session.add(
            Recipient(
                list_id=recipient_list.id,
                user_id=user.id,
                position=position,
                email=row["email"],
                first_name=row.get("first_name"),
                company=row.get("company"),
                title=row.get("title"),
                timezone=row.get("timezone"),
                custom_fields=row.get("custom_fields", {}),
                verification_status=row.get("verification_status", "deliverable"),
            )
        )
    await session.flush()
    return recipient_list


async def make_template(session: AsyncSession, user: User, **overrides: str) -> uuid.UUID:
    data = {
        "name": "Intro",
        "subject": "Hello {{ first_name | default('there') }}",
        "body_text": "Hi {{ first_name | default('there') }}, I admire {{ company }}.",
        **overrides,
    }
    template, _ = await template_service.create(session, user=user, data=TemplateCreate(**data))
    return template.id


class Crash(BaseException):
    """Not an Exception: nothing in the sender may swallow it, like a killed process."""


# Where a worker can die in a tick: the functions of campaign.sending it dies in,
# each before or after the function runs.
CRASH_POINTS: dict[str, list[tuple[str, str]]] = {
    # claimed and committed, nothing sent
    "after_claim": [("_send_claimed", "before")],
    # sent; what records it (at once, or by the background recorder) never runs
    "after_provider_send": [("_finish_sent", "before"), ("_record_sent", "before")],
    # claimed, the claim not committed
    "before_claim_commit": [("claim_due_emails", "after")],
    # the sends are recorded; the campaigns and referrals are not updated
    "before_tick_settles": [("after_sends", "before")],
    # a worker dies while reconciling an expired lease
    "during_recovery": [("_recover_one", "before")],
}


def arm_crash(monkeypatch: pytest.MonkeyPatch, point: str, *, countdown: int = 0) -> list[int]:
    """Arm one crash at ``point`` that fires on call number ``countdown + 1`` (of any of
    its functions); the returned list holds -1 once it fired."""
    from outreach.campaign import sending

    remaining = [countdown]

    def fire() -> None:
        if remaining[0] == 0:
            remaining[0] = -1
            raise Crash(point)
        if remaining[0] > 0:
            remaining[0] -= 1

    def crashing(original: Any, when: str) -> Any:
        async def run(*args: Any, **kwargs: Any) -> Any:
            if when == "before":
                fire()
            result = await original(*args, **kwargs)
            if when == "after":
                fire()
            return result

        return run

    # Each module of the sending package calls the others' functions by the names it
    # imported: the crash is armed wherever the function is looked up.
    modules = [sending, *(m for m in vars(sending).values() if isinstance(m, ModuleType))]
    for name, when in CRASH_POINTS[point]:
        for module in modules:
            if hasattr(module, name):
                monkeypatch.setattr(module, name, crashing(getattr(module, name), when))
    return remaining

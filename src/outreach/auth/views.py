"""The ``Me`` view of a user, with balance and onboarding progress."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from outreach.auth.schemas import MailboxProblem, Me, Onboarding
from outreach.credits.service import credit_service
from outreach.models import User

OnboardingFlag = Callable[[AsyncSession, User], Awaitable[bool]]
_flags: dict[str, OnboardingFlag] = {}


def register_onboarding_flag(name: str, probe: OnboardingFlag) -> None:
    """Domains add their progress flags (``mailbox_connected``, …) to ``/v1/auth/me``."""
    _flags[name] = probe


MailboxProblemsProbe = Callable[[AsyncSession, User], Awaitable[list[MailboxProblem]]]
_mailbox_problems: list[MailboxProblemsProbe] = []


def register_mailbox_problems(probe: MailboxProblemsProbe) -> None:
    """The mailbox domain reports mailboxes needing attention in ``/v1/auth/me``."""
    if probe not in _mailbox_problems:
        _mailbox_problems.append(probe)


async def me_view(session: AsyncSession, user: User) -> Me:
    flags = {name: await probe(session, user) for name, probe in _flags.items()}
    problems = [problem for probe in _mailbox_problems for problem in await probe(session, user)]
    return Me(
        id=user.id,
        email=user.email,
        name=user.name,
        picture=user.picture,
        role=user.role,
        credit_balance=await credit_service.get_balance(session, user_id=user.id),
        referral_code=user.referral_code,
        created_at=user.created_at,
        onboarding=Onboarding(
            has_paid=user.first_paid_at is not None,
            referral_applied=user.referred_by_id is not None,
            flags=flags,
        ),
        mailbox_problems=problems,
    )

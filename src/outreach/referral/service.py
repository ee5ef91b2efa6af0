"""Referrals: codes, applying a friend's code, and the referrer's reward.

The reward (25 credits by default) is given once per referred user, when the
referred user first pays or first has campaign emails really sent through a
connected Gmail mailbox, and at most N times per referrer per 30 days, so
throwaway accounts cannot farm credits.
"""

from __future__ import annotations

import enum
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.account.identity import deleted_before
from outreach.config import get_settings
from outreach.credits.pricing import pricing_from_settings
from outreach.credits.service import credit_service
from outreach.kit.audit import record_audit
from outreach.kit.clock import utcnow
from outreach.kit.errors import Conflict, NotFound, Unprocessable
from outreach.models import LedgerReason, ReferralReward, User

# Crockford's base32 without I, L, O, U: nothing to misread when shared aloud.
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 10  # 32**10 ≈ 10**15 codes: unguessable
_NOT_CODE = re.compile(r"[\s-]")


class ReferralTrigger(enum.StrEnum):
    first_payment = "first_payment"
    first_gmail_send = "first_gmail_send"


class ReferralCodeNotFound(NotFound):
    code, title = "referral_code_not_found", "No such referral code"


class ReferralAlreadyApplied(Conflict):
    code, title = "referral_already_applied", "A referral code is already applied"


class OwnReferralCode(Unprocessable):
    code, title = "referral_own_code", "You cannot use your own referral code"


class ReferralAfterPayment(Conflict):
    code, title = "referral_after_payment", "Referral codes apply only before a first purchase"


class ReferralAfterDeletion(Conflict):
    code, title = "referral_after_deletion", "Referral codes are for new users only"


def normalise_code(code: str) -> str:
    return _NOT_CODE.sub("", code).upper()


def format_code(code: str) -> str:
    """Shown as ``XXXXX-XXXXX``; accepted with or without the dash, any case."""
    return f"{code[:5]}-{code[5:]}"


@dataclass(frozen=True)
class ReferralStats:
    referred_users: int
    rewarded: int
    credits_earned: int


class ReferralService:
    async def unused_code(self, session: AsyncSession) -> str:
        for _ in range(5):
            code = "".join(secrets.choice(_ALPHABET) for _ in range(CODE_LENGTH))
            taken = await session.scalar(select(User.id).where(User.referral_code == code))
            if taken is None:
                return code
        raise RuntimeError("could not find an unused referral code")  # 32**10 space: never

    async def ensure_code(self, session: AsyncSession, *, user: User) -> str:
        """The user's code, created if missing (idempotent)."""
        if user.referral_code is None:
            user.referral_code = await self.unused_code(session)
            await session.flush()
        return user.referral_code

    async def apply_code(self, session: AsyncSession, *, user: User, code: str) -> User:
        """Record that ``user`` was referred by the owner of ``code``. Once, before paying."""
        if user.referred_by_id is not None:
            raise ReferralAlreadyApplied("you have already used a referral code")
        if user.first_paid_at is not None:
            raise ReferralAfterPayment("referral codes can only be used before your first purchase")
        if await deleted_before(session, user.email):
            raise ReferralAfterDeletion(
                "this address had an account before; referral codes are for new users"
            )
        normalised = normalise_code(code)
        referrer = await session.scalar(select(User).where(User.referral_code == normalised))
        if referrer is None or not normalised:
            raise ReferralCodeNotFound(f"no referral code {code!r}")
        if referrer.id == user.id:
            raise OwnReferralCode("that is your own referral code")
        user.referred_by_id = referrer.id
        user.referred_at = utcnow()
        await session.flush()
        await record_audit(
            session,
            action="referral.apply",
            actor_id=user.id,
            target_type="user",
            target_id=referrer.id,
        )
        return referrer

    async def grant_referral_reward_if_eligible(
        self, session: AsyncSession, *, referred_user_id: uuid.UUID, trigger: ReferralTrigger
    ) -> ReferralReward | None:
        """Reward the referrer of ``referred_user_id`` once, within the 30-day cap.

        Called by payments (first purchase) and sending (first email sent through
        a connected Gmail mailbox). Returns the reward, or None when not eligible.
        """
        referred = await session.get(User, referred_user_id)
        if referred is None or referred.referred_by_id is None:
            return None
        existing = await session.scalar(
            select(ReferralReward).where(ReferralReward.referred_id == referred_user_id)
        )
        if existing is not None:
            return None
        settings = get_settings()
        recent = await session.scalar(
            select(func.count())
            .select_from(ReferralReward)
            .where(
                ReferralReward.referrer_id == referred.referred_by_id,
                ReferralReward.created_at > utcnow() - timedelta(days=30),
            )
        )
        if (recent or 0) >= settings.referral_max_rewards_per_30_days:
            await record_audit(
                session,
                action="referral.reward_capped",
                actor_id=None,
                target_type="user",
                target_id=referred.referred_by_id,
                details={"referred_id": str(referred_user_id)},
            )
            return None
        credits = pricing_from_settings(settings).referral_reward
        try:
            async with session.begin_nested():
                reward = ReferralReward(
                    referrer_id=referred.referred_by_id,
                    referred_id=referred_user_id,
                    trigger=trigger.value,
                    credits=credits,
                )
                session.add(reward)
                await session.flush()
        except IntegrityError:
            return None  # a concurrent trigger rewarded this referral first
        await credit_service.apply_ledger_entry(
            session,
            user_id=referred.referred_by_id,
            delta=credits,
            reason=LedgerReason.referral_reward,
            ref=str(referred_user_id),
            idempotency_key=f"referral:{referred_user_id}",
        )
        await record_audit(
            session,
            action="referral.reward",
            actor_id=None,
            target_type="user",
            target_id=referred.referred_by_id,
            details={
                "referred_id": str(referred_user_id),
                "trigger": trigger.value,
                "credits": credits,
            },
        )
        return reward

    async def stats(self, session: AsyncSession, *, user: User) -> ReferralStats:
        referred = await session.scalar(
            select(func.count()).select_from(User).where(User.referred_by_id == user.id)
        )
        rewarded, earned = (
            await session.execute(
                select(func.count(), func.coalesce(func.sum(ReferralReward.credits), 0)).where(
                    ReferralReward.referrer_id == user.id
                )
            )
        ).one()
        return ReferralStats(
            referred_users=referred or 0, rewarded=int(rewarded), credits_earned=int(earned)
        )


referral_service = ReferralService()

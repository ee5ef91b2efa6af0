"""/v1/referrals: your code, applying a friend's, and what you earned."""

from __future__ import annotations

from fastapi import APIRouter, Request

from outreach.auth.dependencies import CurrentUser
from outreach.credits.pricing import pricing_from_settings
from outreach.kit.db import SessionDep
from outreach.kit.errors import problem_responses
from outreach.kit.idempotency import IdempotentRoute
from outreach.models import User
from outreach.referral.schemas import ApplyReferral, ReferralApplied, ReferralMe, ReferralStatsOut
from outreach.referral.service import format_code, referral_service

router = APIRouter(prefix="/v1/referrals", tags=["referrals"], route_class=IdempotentRoute)


async def _me(request: Request, session: SessionDep, user: User) -> ReferralMe:
    code = await referral_service.ensure_code(session, user=user)
    stats = await referral_service.stats(session, user=user)
    base = request.app.state.settings.base_url.rstrip("/")
    return ReferralMe(
        code=format_code(code),
        share_link=f"{base}/?ref={format_code(code)}",
        referred_users=stats.referred_users,
        rewarded=stats.rewarded,
    )


@router.get("/me", summary="Your referral code and share link", responses=problem_responses(401))
async def get_my_referral(request: Request, user: CurrentUser, session: SessionDep) -> ReferralMe:
    return await _me(request, session, user)


@router.post(
    "/me",
    summary="Create your referral code if missing (idempotent)",
    responses=problem_responses(401, 403),
)
async def create_my_referral(
    request: Request, user: CurrentUser, session: SessionDep
) -> ReferralMe:
    return await _me(request, session, user)


@router.post(
    "/apply",
    summary="Use a friend's referral code (once, before your first purchase)",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def apply_referral(
    body: ApplyReferral, user: CurrentUser, session: SessionDep
) -> ReferralApplied:
    referrer = await referral_service.apply_code(session, user=user, code=body.code)
    return ReferralApplied(referrer_name=referrer.name)


@router.get(
    "/stats", summary="People you referred and credits earned", responses=problem_responses(401)
)
async def referral_stats(
    request: Request, user: CurrentUser, session: SessionDep
) -> ReferralStatsOut:
    stats = await referral_service.stats(session, user=user)
    settings = request.app.state.settings
    return ReferralStatsOut(
        referred_users=stats.referred_users,
        rewarded=stats.rewarded,
        credits_earned=stats.credits_earned,
        reward_per_referral=pricing_from_settings(settings).referral_reward,
        max_rewards_per_30_days=settings.referral_max_rewards_per_30_days,
    )

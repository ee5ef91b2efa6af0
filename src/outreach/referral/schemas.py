from __future__ import annotations

from pydantic import BaseModel, Field


class ReferralMe(BaseModel):
    code: str = Field(description="Your code, formatted for sharing (XXXXX-XXXXX)")
    share_link: str
    referred_users: int
    rewarded: int


class ApplyReferral(BaseModel):
    code: str = Field(min_length=1, max_length=40)


class ReferralApplied(BaseModel):
    applied: bool = True
    referrer_name: str | None


class ReferralStatsOut(BaseModel):
    referred_users: int
    rewarded: int
    credits_earned: int
    reward_per_referral: int
    max_rewards_per_30_days: int

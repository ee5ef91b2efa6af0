from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class Balance(BaseModel):
    balance: int = Field(description="Credits available now")


class LedgerEntryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    delta: int
    reason: str
    ref: str | None
    balance_after: int
    created_at: datetime


class PackOut(BaseModel):
    id: str
    credits: int
    amount_paise: int
    currency: str


class PricingOut(BaseModel):
    signup_grant: int
    verify_per_address: int
    enrich_per_address_found: int
    ai_template: int
    resume_analysis: int
    free_resume_analyses_per_30_days: int
    scheduled_email: int
    referral_reward: int
    first_purchase_bonus_percent: int
    packs: list[PackOut]

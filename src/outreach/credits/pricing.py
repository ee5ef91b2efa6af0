"""What things cost, in credits, and what credits cost, in paise.

Defaults live here; every price can be overridden by a setting
(``OUTREACH_PRICE_*``) so an operator can change prices without a release.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from outreach.config import Settings


@dataclass(frozen=True)
class CreditPack:
    id: str
    credits: int
    amount_paise: int
    currency: str = "INR"


@dataclass(frozen=True)
class Pricing:
    signup_grant: int = 20
    verify_per_address: int = 1
    enrich_per_address_found: int = 2
    ai_template: int = 2
    resume_analysis: int = 5
    free_resume_analyses_per_30_days: int = 1
    scheduled_email: int = 1
    referral_reward: int = 25
    first_purchase_bonus_percent: int = 20
    packs: tuple[CreditPack, ...] = (
        CreditPack("pack_100", 100, 19_900),
        CreditPack("pack_500", 500, 79_900),
        CreditPack("pack_2000", 2000, 249_900),
    )

    def pack(self, pack_id: str) -> CreditPack | None:
        return next((pack for pack in self.packs if pack.id == pack_id), None)


DEFAULT_PRICING = Pricing()


def pricing_from_settings(settings: Settings) -> Pricing:
    """The defaults, with every price a setting overrides replaced."""
    overrides = {
        "signup_grant": settings.price_signup_grant,
        "verify_per_address": settings.price_verify,
        "enrich_per_address_found": settings.price_enrich,
        "ai_template": settings.price_ai_template,
        "resume_analysis": settings.price_resume_analysis,
        "scheduled_email": settings.price_scheduled_email,
        "referral_reward": settings.referral_reward_credits,
    }
    values: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
    return dataclasses.replace(DEFAULT_PRICING, **values)

"""What the onboarding and outreach-plan workflows answer."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, Field

from outreach.campaign.schemas import ProjectedSchedule
from outreach.models.campaign import CampaignStatus

OnboardingStepKey = Literal[
    "signed_in",
    "mailbox_connected",
    "resume_analysed",
    "list_verified",
    "template_created",
    "campaign_scheduled",
]


class NextAction(BaseModel):
    """The one thing to do next, and why."""

    action: str = Field(
        description="connect_gmail, reconnect_mailbox, upload_resume, analyse_resume, "
        "import_list, wait_for_import, verify_list, buy_credits, create_template, "
        "create_campaign or schedule_campaign",
        examples=["verify_list"],
    )
    title: str
    reason: str = Field(description="One sentence: why this, now")
    request: str | None = Field(
        default=None,
        description="The API call that does it",
        examples=["POST /v1/verify/bulk"],
    )
    resource_id: uuid.UUID | None = Field(
        default=None, description="The list, mailbox or campaign the action is about"
    )


class OnboardingStep(BaseModel):
    key: OnboardingStepKey
    title: str
    done: bool
    detail: str = Field(description="Where this step stands, in a sentence")


class OnboardingStatus(BaseModel):
    steps: list[OnboardingStep] = Field(description="In the order they are best done")
    completed: int
    total: int
    next_action: NextAction | None = Field(description="Null once every step is done")


CheckStatus = Literal["pass", "warn", "fail"]


class ReadinessCheck(BaseModel):
    key: str = Field(
        description="campaign_state, mailbox_health, list_ready, audience, "
        "verification_coverage, suppressed_share, missing_variables or credit_balance"
    )
    status: CheckStatus = Field(description="fail blocks scheduling; warn does not")
    message: str
    value: float | None = Field(default=None, description="The measured share or amount")


class PlanRisk(BaseModel):
    key: str = Field(
        description="undeliverable_share, unverified_share, risky_share, cap_spillover, "
        "window_below_cap, gmail_daily_limit or company_cap_deferrals"
    )
    severity: Literal["high", "medium", "low"]
    message: str


class PlanSuggestion(BaseModel):
    key: str = Field(
        description="verify_first, subject_length, subject_personalisation, "
        "body_personalisation, body_length or test_send"
    )
    message: str


class PlanAudience(BaseModel):
    recipients: int = Field(description="Rows, duplicates included")
    unique: int
    by_verification: dict[str, int] = Field(description="Unique addresses per status")
    suppressed: int
    to_send: int | None = Field(description="Null when the campaign cannot be previewed")
    skipped: dict[str, int] = Field(description="Recipients left out, by reason")


class PlanCost(BaseModel):
    credit_cost: int | None = Field(description="Null when the campaign cannot be previewed")
    credit_balance: int
    shortfall: int = Field(description="Credits missing to schedule; 0 when enough")


class PlanAdvice(BaseModel):
    """Free-text advice, present only when a language model is configured and answers."""

    source: Literal["llm", "none"] = Field(
        description="llm: written by the configured language model; none: no advice"
    )
    model: str | None = None
    text: str | None = None
    note: str = Field(description="How to read this section")


class OutreachPlan(BaseModel):
    campaign_id: uuid.UUID
    campaign_status: CampaignStatus
    ready: bool = Field(description="True when no check fails")
    checks: list[ReadinessCheck]
    risks: list[PlanRisk]
    audience: PlanAudience
    cost: PlanCost
    schedule: ProjectedSchedule | None = Field(
        description="Null when the campaign cannot be previewed (see the failed check)"
    )
    suggestions: list[PlanSuggestion]
    advice: PlanAdvice

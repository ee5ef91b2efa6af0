"""The outreach plan's rules: pure functions from facts to checks, risks and
suggestions, so each threshold is stated once and tested without a database."""

from __future__ import annotations

import re
from dataclasses import dataclass

from outreach.campaign.audience import AudienceOverview
from outreach.campaign.schemas import PreviewOut
from outreach.models import Campaign
from outreach.workflow.schemas import PlanRisk, PlanSuggestion, ReadinessCheck

# More undeliverable addresses than this share points at a stale or scraped list.
UNDELIVERABLE_RISK_SHARE = 0.05
# Below this verified share the check warns (the rest was never checked).
VERIFIED_SHARE_OK = 0.95
UNVERIFIED_RISK_SHARE = 0.20
RISKY_RISK_SHARE = 0.20  # catch-all, role and unknown addresses
SUPPRESSED_WARN_SHARE = 0.10
GMAIL_CONSUMER_DAILY_LIMIT = 500  # Gmail's own limit for @gmail.com accounts
SUBJECT_MAX_CHARS = 60  # phones show about 40 to 60 characters of a subject
BODY_MAX_WORDS = 150  # cold emails past this are read less
PERSONAL_VARIABLES = {"first_name", "last_name", "full_name", "company", "title"}
_CONSUMER_GMAIL = ("@gmail.com", "@googlemail.com")


@dataclass(frozen=True)
class Findings:
    checks: list[ReadinessCheck]
    risks: list[PlanRisk]


def _percent(share: float) -> str:
    return f"{share:.0%}" if share >= 0.01 or share == 0 else f"{share:.1%}"


def audience_findings(overview: AudienceOverview) -> Findings:
    """Verification coverage, suppressed share and the deliverability risks."""
    if overview.unique == 0:
        check = ReadinessCheck(
            key="audience", status="fail", message="The campaign has no recipients."
        )
        return Findings([check], [])
    unique = overview.unique
    statuses = overview.by_verification
    unverified = statuses.get("unverified", 0)
    verified_share = (unique - unverified) / unique
    suppressed_share = overview.suppressed / unique
    checks = [
        ReadinessCheck(
            key="verification_coverage",
            status="pass" if verified_share >= VERIFIED_SHARE_OK else "warn",
            message=f"{unique - unverified} of {unique} addresses are verified "
            f"({_percent(verified_share)}).",
            value=round(verified_share, 4),
        ),
        ReadinessCheck(
            key="suppressed_share",
            status="pass" if suppressed_share <= SUPPRESSED_WARN_SHARE else "warn",
            message=f"{overview.suppressed} of {unique} addresses are suppressed and will "
            f"be skipped ({_percent(suppressed_share)}).",
            value=round(suppressed_share, 4),
        ),
    ]
    return Findings(checks, _deliverability_risks(unique, statuses))


def _deliverability_risks(unique: int, statuses: dict[str, int]) -> list[PlanRisk]:
    risks = []
    undeliverable = statuses.get("undeliverable", 0) / unique
    if undeliverable > UNDELIVERABLE_RISK_SHARE:
        risks.append(
            PlanRisk(
                key="undeliverable_share",
                severity="high",
                message=f"{_percent(undeliverable)} of the addresses are undeliverable (more "
                "than 5 %). They are skipped, but a list this stale usually holds more bad "
                "addresses than verification finds, and bounces count against your mailbox.",
            )
        )
    unverified = statuses.get("unverified", 0) / unique
    if unverified > UNVERIFIED_RISK_SHARE:
        risks.append(
            PlanRisk(
                key="unverified_share",
                severity="medium",
                message=f"{_percent(unverified)} of the addresses were never verified; every "
                "bounce among them counts against your mailbox.",
            )
        )
    risky = (statuses.get("risky", 0) + statuses.get("unknown", 0)) / unique
    if risky > RISKY_RISK_SHARE:
        risks.append(
            PlanRisk(
                key="risky_share",
                severity="medium",
                message=f"{_percent(risky)} of the addresses are risky or unknown (catch-all "
                "domains, role accounts, servers that did not answer).",
            )
        )
    return risks


def preview_findings(preview: PreviewOut, *, daily_cap: int) -> Findings:
    """What the preview says: nothing to send, missing variables, credits, the cap."""
    checks = [
        ReadinessCheck(
            key="audience",
            status="pass" if preview.to_send else "fail",
            message=f"{preview.to_send} email(s) would be scheduled."
            if preview.to_send
            else "Every recipient would be skipped.",
            value=preview.to_send,
        )
    ]
    missing = preview.skipped.get("missing_variable", 0)
    checks.append(
        ReadinessCheck(
            key="missing_variables",
            status="warn" if missing else "pass",
            message=f"{missing} recipient(s) lack a value the template needs and would be "
            "skipped; add a default() or fill the column."
            if missing
            else "Every recipient has the values the template needs.",
            value=missing,
        )
    )
    unrenderable = preview.skipped.get("render_failed", 0)
    if unrenderable:  # only a template saved before today's checks, or an over-long value
        checks.append(
            ReadinessCheck(
                key="render_failed",
                status="warn",
                message=f"{unrenderable} recipient(s) would be skipped because their email "
                "cannot be rendered (see the preview's skipped_examples).",
                value=unrenderable,
            )
        )
    shortfall = max(preview.credit_cost - preview.credit_balance, 0)
    checks.append(
        ReadinessCheck(
            key="credit_balance",
            status="fail" if shortfall else "pass",
            message=f"Scheduling costs {preview.credit_cost} credits; you have "
            f"{preview.credit_balance}" + (f", {shortfall} short." if shortfall else "."),
            value=preview.credit_balance,
        )
    )
    return Findings(checks, _schedule_risks(preview, daily_cap))


def _schedule_risks(preview: PreviewOut, daily_cap: int) -> list[PlanRisk]:
    risks = []
    days = preview.schedule.emails_per_day
    if len(days) > 1 and preview.to_send > daily_cap:
        risks.append(
            PlanRisk(
                key="cap_spillover",
                severity="low",
                message=f"{preview.to_send} emails exceed the daily cap of {daily_cap}: "
                f"sending takes {len(days)} days ({min(days)} to {max(days)}).",
            )
        )
    if preview.deferred_by_company_cap:
        risks.append(
            PlanRisk(
                key="company_cap_deferrals",
                severity="low",
                message=f"{len(preview.deferred_by_company_cap)} email(s) wait for the "
                "company cap: they go out after the others.",
            )
        )
    return risks


def _minutes(value: str) -> int:
    hours, minutes = value.split(":")
    return int(hours) * 60 + int(minutes)


def campaign_risks(
    campaign: Campaign, *, mailbox_address: str, daily_cap: int, emails: int
) -> list[PlanRisk]:
    """Risks in the campaign's own settings: a window too short for its cap (when that
    is what stretches these ``emails`` over more days), a cap above what Gmail allows
    a personal account."""
    risks = []
    window_seconds = (_minutes(campaign.window_end) - _minutes(campaign.window_start)) * 60
    gap = campaign.min_gap_seconds + campaign.jitter_seconds / 2
    if gap > 0 and window_seconds > 0:
        fits = int(window_seconds // gap) + 1
        if fits < daily_cap and emails > fits:
            risks.append(
                PlanRisk(
                    key="window_below_cap",
                    severity="low",
                    message=f"The {campaign.window_start}-{campaign.window_end} window fits "
                    f"about {fits} emails a day at one every {int(gap)} s, fewer than the "
                    f"daily cap of {daily_cap}: the campaign takes longer than the cap suggests.",
                )
            )
    if mailbox_address.lower().endswith(_CONSUMER_GMAIL) and daily_cap > GMAIL_CONSUMER_DAILY_LIMIT:
        risks.append(
            PlanRisk(
                key="gmail_daily_limit",
                severity="high",
                message=f"A personal Gmail account may send about {GMAIL_CONSUMER_DAILY_LIMIT} "
                f"emails a day; a cap of {daily_cap} runs into Gmail's limit and a suspension.",
            )
        )
    return risks


_WORD = re.compile(r"\w+")
_EXPRESSION = re.compile(r"\{\{.*?\}\}", re.DOTALL)  # a value: one word once rendered
_TAG = re.compile(r"\{%.*?%\}", re.DOTALL)  # if/else: no words of its own


def content_suggestions(
    *, subject: str, body_text: str, variables: dict[str, list[str]]
) -> list[PlanSuggestion]:
    """Subject length and personalisation; ``subject`` is as rendered when known."""
    suggestions = []
    if len(subject) > SUBJECT_MAX_CHARS:
        suggestions.append(
            PlanSuggestion(
                key="subject_length",
                message=f"The subject is {len(subject)} characters; phones show about 40 to "
                f"60. Keep it under {SUBJECT_MAX_CHARS}.",
            )
        )
    if not PERSONAL_VARIABLES & set(variables.get("subject", [])):
        suggestions.append(
            PlanSuggestion(
                key="subject_personalisation",
                message="The subject is the same for everyone; a {{ company }} or "
                "{{ first_name }} in it reads as written for the recipient.",
            )
        )
    body_variables = set(variables.get("body_text", [])) | set(variables.get("body_html", []))
    if not PERSONAL_VARIABLES & body_variables:
        suggestions.append(
            PlanSuggestion(
                key="body_personalisation",
                message="The body names nothing about the recipient; greet them by "
                "{{ first_name }} and say why {{ company }}.",
            )
        )
    words = len(_WORD.findall(_TAG.sub(" ", _EXPRESSION.sub(" x ", body_text))))
    if words > BODY_MAX_WORDS:
        suggestions.append(
            PlanSuggestion(
                key="body_length",
                message=f"The body is {words} words; cold emails under {BODY_MAX_WORDS} are "
                "read more often.",
            )
        )
    return suggestions

"""The outreach plan's thresholds, at their edges."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from outreach.campaign.audience import AudienceOverview
from outreach.campaign.schemas import PreviewOut, ProjectedSchedule
from outreach.models import Campaign
from outreach.workflow import plan_rules


def overview(**by_verification: int) -> AudienceOverview:
    unique = sum(by_verification.values())
    return AudienceOverview(unique, unique, by_verification, suppressed=0)


def risk_keys(findings: plan_rules.Findings) -> list[str]:
    return [risk.key for risk in findings.risks]


def test_more_than_five_percent_undeliverable_is_a_high_risk() -> None:
    assert risk_keys(plan_rules.audience_findings(overview(deliverable=95, undeliverable=5))) == []
    findings = plan_rules.audience_findings(overview(deliverable=94, undeliverable=6))
    assert risk_keys(findings) == ["undeliverable_share"]
    assert findings.risks[0].severity == "high"
    assert findings.risks[0].message.startswith("6% of the addresses are undeliverable")


def test_unverified_and_risky_shares() -> None:
    findings = plan_rules.audience_findings(overview(deliverable=70, unverified=21, risky=9))
    coverage = {check.key: check for check in findings.checks}["verification_coverage"]
    assert (coverage.status, coverage.value) == ("warn", 0.79)
    assert risk_keys(findings) == ["unverified_share"]
    findings = plan_rules.audience_findings(overview(deliverable=79, risky=11, unknown=10))
    assert risk_keys(findings) == ["risky_share"]
    assert {c.key: c.status for c in findings.checks}["verification_coverage"] == "pass"


def test_no_recipients_fails() -> None:
    findings = plan_rules.audience_findings(overview())
    assert [(c.key, c.status) for c in findings.checks] == [("audience", "fail")]


def preview(to_send: int, per_day: dict[str, int], cost: int, balance: int) -> PreviewOut:
    return PreviewOut(
        to_send=to_send,
        skipped={},
        skipped_examples=[],
        deferred_by_company_cap=[],
        credit_cost=cost,
        credit_balance=balance,
        schedule=ProjectedSchedule(
            first_send_at=None, last_send_at=None, emails_per_day=per_day, timezone="UTC"
        ),
        emails=[],
    )


def test_credits_and_the_cap() -> None:
    enough = plan_rules.preview_findings(preview(2, {"2026-11-30": 2}, 2, 2), daily_cap=5)
    assert {c.key: c.status for c in enough.checks}["credit_balance"] == "pass"
    assert enough.risks == []
    short = plan_rules.preview_findings(
        preview(6, {"2026-11-30": 5, "2026-12-01": 1}, 6, 5), daily_cap=5
    )
    assert {c.key: c.status for c in short.checks}["credit_balance"] == "fail"
    assert risk_keys(short) == ["cap_spillover"]
    assert "sending takes 2 days (2026-11-30 to 2026-12-01)" in short.risks[0].message


def campaign(**values: object) -> Campaign:
    settings: dict[str, object] = {
        "window_start": "09:00",
        "window_end": "17:00",
        "min_gap_seconds": 120,
        "jitter_seconds": 60,
    }
    return Campaign(id=uuid.uuid4(), start_at=datetime.now(UTC), **(settings | values))


def test_a_window_too_short_for_the_cap_and_gmails_own_limit() -> None:
    # 8 hours at one email every 150 s: 193 a day, under the cap of 250.
    assert (
        plan_rules.campaign_risks(campaign(), mailbox_address="a@x.com", daily_cap=250, emails=193)
        == []
    )
    risks = plan_rules.campaign_risks(
        campaign(), mailbox_address="a@x.com", daily_cap=250, emails=194
    )
    assert [r.key for r in risks] == ["window_below_cap"]
    assert "about 193 emails a day" in risks[0].message
    risks = plan_rules.campaign_risks(
        campaign(), mailbox_address="Me@Gmail.com", daily_cap=501, emails=10
    )
    assert [(r.key, r.severity) for r in risks] == [("gmail_daily_limit", "high")]
    assert (
        plan_rules.campaign_risks(
            campaign(), mailbox_address="me@company.com", daily_cap=1500, emails=10
        )
        == []
    )  # Workspace accounts may send more


def test_content_suggestions() -> None:
    personal = {"subject": ["company"], "body_text": ["first_name", "company"]}
    assert (
        plan_rules.content_suggestions(
            subject="Data roles at Acme", body_text="Hi", variables=personal
        )
        == []
    )
    body = "{{ first_name }} " + "word " * 149 + "{% if company %}{{ company }}{% endif %}"
    keys = [
        s.key
        for s in plan_rules.content_suggestions(subject="x" * 61, body_text=body, variables={})
    ]
    assert keys == [
        "subject_length",
        "subject_personalisation",
        "body_personalisation",
        "body_length",
    ]
    short = "{{ first_name }} " + "word " * 148 + "{% if company %}{{ company }}{% endif %}"
    assert "body_length" not in [
        s.key for s in plan_rules.content_suggestions(subject="x", body_text=short, variables={})
    ]

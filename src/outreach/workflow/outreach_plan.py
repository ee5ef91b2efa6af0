"""The outreach plan as a graph: readiness checks, risks, the projected schedule
and suggestions for one campaign, before it is scheduled.

    campaign_state → mailbox → audience ─┬→ preview ─┐
                                         └───────────┴→ content → assemble ─┬→ advise → END
                                                                            └→ END

``preview`` reuses the campaign preview (``campaign.views.preview``: the same
audience, skips, cost and planner that scheduling uses); it is skipped when a
blocking check already failed. Every node reads through a domain service.
The plan is deterministic; ``advise`` runs only with a language model
configured and adds labelled free text beside it.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.campaign import views as campaign_views
from outreach.campaign.audience import AudienceOverview
from outreach.campaign.schemas import PreviewOut
from outreach.campaign.service import campaign_service
from outreach.credits.service import credit_service
from outreach.kit.clock import utcnow
from outreach.kit.errors import AppError
from outreach.llm.service import llm_service
from outreach.mailbox.service import mailbox_service
from outreach.models import (
    Campaign,
    ListStatus,
    MailboxProvider,
    MailboxStatus,
    TemplateVersion,
    User,
)
from outreach.models.campaign import CampaignStatus
from outreach.recipient.lists import ListNotFound, list_service
from outreach.template.service import template_service
from outreach.workflow import plan_rules
from outreach.workflow.advice import NOT_CONFIGURED, write_advice
from outreach.workflow.schemas import (
    OutreachPlan,
    PlanAudience,
    PlanCost,
    PlanRisk,
    PlanSuggestion,
    ReadinessCheck,
)


@dataclass
class PlanContext:
    session: AsyncSession
    user: User
    campaign: Campaign
    preview_limit: int = 1  # emails the preview renders (the web review page shows 3)


class PlanState(TypedDict, total=False):
    checks: Annotated[list[ReadinessCheck], operator.add]
    risks: Annotated[list[PlanRisk], operator.add]
    suggestions: Annotated[list[PlanSuggestion], operator.add]
    mailbox_address: str
    daily_cap: int
    overview: AudienceOverview
    preview: PreviewOut | None
    version: TemplateVersion | None
    plan: OutreachPlan


def _check(key: str, status: Literal["pass", "warn", "fail"], message: str) -> ReadinessCheck:
    return ReadinessCheck(key=key, status=status, message=message)


async def check_campaign_state(state: PlanState, runtime: Runtime[PlanContext]) -> PlanState:
    campaign = runtime.context.campaign
    if campaign.status == CampaignStatus.draft:
        check = _check("campaign_state", "pass", "The campaign is a draft, ready to schedule.")
    else:
        check = _check(
            "campaign_state",
            "fail",
            f"The campaign is already {campaign.status.value}; only a draft is scheduled.",
        )
    return {"checks": [check]}


async def check_mailbox(state: PlanState, runtime: Runtime[PlanContext]) -> PlanState:
    context = runtime.context
    campaign = context.campaign
    try:
        mailbox = await mailbox_service.get_mailbox(
            context.session, user=context.user, mailbox_id=campaign.mailbox_id
        )
    except AppError:
        check = _check("mailbox_health", "fail", "The campaign's mailbox is gone; pick another.")
        return {"checks": [check], "mailbox_address": "", "daily_cap": campaign.daily_cap or 1}
    daily_cap = campaign.daily_cap or mailbox.daily_cap
    if mailbox.status != MailboxStatus.active:
        reason = f": {mailbox.status_reason}" if mailbox.status_reason else ""
        check = _check(
            "mailbox_health",
            "fail",
            f"{mailbox.address} is {mailbox.status.value}{reason}; reconnect it first.",
        )
    elif mailbox.sending_deferred_until is not None and mailbox.sending_deferred_until > utcnow():
        check = _check(
            "mailbox_health",
            "warn",
            f"Gmail's daily limit was reached on {mailbox.address}; sending resumes at "
            f"{mailbox.sending_deferred_until.isoformat()}.",
        )
    elif mailbox.provider == MailboxProvider.outbox:
        check = _check(
            "mailbox_health",
            "warn",
            f"{mailbox.address} is the file outbox: messages are written to files, not sent.",
        )
    else:
        check = _check("mailbox_health", "pass", f"{mailbox.address} can send.")
    return {"checks": [check], "mailbox_address": mailbox.address, "daily_cap": daily_cap}


async def check_audience(state: PlanState, runtime: Runtime[PlanContext]) -> PlanState:
    context = runtime.context
    campaign = context.campaign
    checks: list[ReadinessCheck] = []
    if campaign.list_id is not None:
        try:
            recipient_list = await list_service.get_list(
                context.session, user_id=context.user.id, list_id=campaign.list_id
            )
        except ListNotFound:
            checks.append(_check("list_ready", "fail", "The campaign's list was deleted."))
        else:
            ready = recipient_list.status == ListStatus.ready
            checks.append(
                _check(
                    "list_ready",
                    "pass" if ready else "fail",
                    f"'{recipient_list.name}' is {recipient_list.status.value}"
                    + ("." if ready else "; wait for the import to finish."),
                )
            )
    overview = await campaign_service.audience_overview(context.session, campaign=campaign)
    findings = plan_rules.audience_findings(overview)
    return {"checks": checks + findings.checks, "risks": findings.risks, "overview": overview}


def after_audience(state: PlanState) -> str:
    """A failed check means scheduling would be refused anyway: do not preview."""
    return "content" if any(c.status == "fail" for c in state["checks"]) else "preview"


async def run_preview(state: PlanState, runtime: Runtime[PlanContext]) -> PlanState:
    context = runtime.context
    try:
        preview = await campaign_views.preview(
            context.session,
            user=context.user,
            campaign=context.campaign,
            limit=context.preview_limit,
        )
    except AppError as exc:  # e.g. a window the planner cannot use
        return {"checks": [_check("audience", "fail", str(exc))], "preview": None}
    findings = plan_rules.preview_findings(preview, daily_cap=state["daily_cap"])
    return {"checks": findings.checks, "risks": findings.risks, "preview": preview}


async def review_content(state: PlanState, runtime: Runtime[PlanContext]) -> PlanState:
    context = runtime.context
    campaign = context.campaign
    preview = state.get("preview")
    overview = state["overview"]
    risks = plan_rules.campaign_risks(
        campaign,
        mailbox_address=state["mailbox_address"],
        daily_cap=state["daily_cap"],
        emails=preview.to_send if preview is not None else overview.unique,
    )
    try:
        template = await template_service.get(
            context.session, user=context.user, template_id=campaign.template_id
        )
        version = await template_service.get_version(context.session, template=template)
    except AppError:
        check = _check("template", "fail", "The campaign's template was deleted.")
        return {"checks": [check], "risks": risks, "version": None}
    subject = preview.emails[0].subject if preview and preview.emails else version.subject
    suggestions = plan_rules.content_suggestions(
        subject=subject,
        body_text=version.body_text,
        variables=template_service.variables_by_part(version),
    )
    unverified = overview.by_verification.get("unverified", 0)
    if unverified:
        suggestions.insert(
            0,
            PlanSuggestion(
                key="verify_first",
                message=f"Verify the {unverified} unchecked address(es) first "
                "(POST /v1/verify/bulk, 1 credit each): bad addresses are then skipped.",
            ),
        )
    suggestions.append(
        PlanSuggestion(
            key="test_send",
            message=f"Send yourself the first email (POST /v1/campaigns/{campaign.id}/test-send)"
            " and read it on your phone before scheduling.",
        )
    )
    return {"risks": risks, "suggestions": suggestions, "version": version}


async def assemble(state: PlanState, runtime: Runtime[PlanContext]) -> PlanState:
    context = runtime.context
    preview = state.get("preview")
    overview = state["overview"]
    balance = (
        preview.credit_balance
        if preview is not None
        else await credit_service.get_balance(context.session, user_id=context.user.id)
    )
    checks = state["checks"]
    plan = OutreachPlan(
        campaign_id=context.campaign.id,
        campaign_status=context.campaign.status,
        ready=not any(c.status == "fail" for c in checks),
        checks=checks,
        risks=sorted(
            state.get("risks", []), key=lambda r: ("high", "medium", "low").index(r.severity)
        ),
        audience=PlanAudience(
            recipients=overview.recipients,
            unique=overview.unique,
            by_verification=overview.by_verification,
            suppressed=overview.suppressed,
            to_send=preview.to_send if preview is not None else None,
            skipped=preview.skipped if preview is not None else {},
        ),
        cost=PlanCost(
            credit_cost=preview.credit_cost if preview is not None else None,
            credit_balance=balance,
            shortfall=max(preview.credit_cost - balance, 0) if preview is not None else 0,
        ),
        schedule=preview.schedule if preview is not None else None,
        suggestions=state.get("suggestions", []),
        advice=NOT_CONFIGURED,
    )
    return {"plan": plan}


def after_assemble(state: PlanState) -> str:
    return "advise" if llm_service.configured() else END


async def advise(state: PlanState) -> PlanState:
    plan = state["plan"]
    advice = await write_advice(plan, state.get("version"))
    return {"plan": plan.model_copy(update={"advice": advice})}


def build_outreach_plan_graph() -> StateGraph[PlanState, PlanContext, Any, Any]:
    graph: StateGraph[PlanState, PlanContext, Any, Any] = StateGraph(
        PlanState, context_schema=PlanContext
    )
    graph.add_node("campaign_state", check_campaign_state)
    graph.add_node("mailbox", check_mailbox)
    graph.add_node("audience", check_audience)
    graph.add_node("preview", run_preview)
    graph.add_node("content", review_content)
    graph.add_node("assemble", assemble)
    graph.add_node("advise", advise)
    graph.add_edge(START, "campaign_state")
    graph.add_edge("campaign_state", "mailbox")
    graph.add_edge("mailbox", "audience")
    graph.add_conditional_edges("audience", after_audience, ["preview", "content"])
    graph.add_edge("preview", "content")
    graph.add_edge("content", "assemble")
    graph.add_conditional_edges("assemble", after_assemble, ["advise", END])
    graph.add_edge("advise", END)
    return graph


# Request-time graph: nothing to resume, so no checkpointer.
outreach_plan_graph = build_outreach_plan_graph().compile()


async def outreach_plan(session: AsyncSession, *, user: User, campaign: Campaign) -> OutreachPlan:
    """Readiness checks, risks, projected schedule and suggestions for ``campaign``
    (the caller has checked it is the user's)."""
    plan, _ = await outreach_plan_with_preview(session, user=user, campaign=campaign)
    return plan


async def outreach_plan_with_preview(
    session: AsyncSession, *, user: User, campaign: Campaign, preview_limit: int = 1
) -> tuple[OutreachPlan, PreviewOut | None]:
    """The plan and the preview it was built on (None when a blocking check failed),
    with ``preview_limit`` emails rendered: one run of the planner for a page that shows
    both the plan and the first emails."""
    result = await outreach_plan_graph.ainvoke(
        {"checks": [], "risks": [], "suggestions": []},
        context=PlanContext(session, user, campaign, preview_limit),
    )
    plan: OutreachPlan = result["plan"]
    preview: PreviewOut | None = result.get("preview")
    return plan, preview

"""Onboarding as a graph: one node per step, in order, then the next best action.

Each step node asks the domain that owns it (mailbox, resume, recipients,
templates, campaigns) where the user stands; ``decide`` picks the action of
the first step not done. A mailbox that stopped working undoes the mailbox
step, which comes right after signing in: reconnecting it is then the next
action, before anything else (its campaigns are paused). No language model is
involved: the answer is the same for the same data. The step probes also feed
the ``onboarding.flags`` of ``/v1/auth/me`` (``register_onboarding_flag``), so
both always agree.
"""

from __future__ import annotations

import operator
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.auth.views import register_onboarding_flag
from outreach.campaign.service import campaign_service
from outreach.config import get_settings
from outreach.credits.pricing import pricing_from_settings
from outreach.credits.service import credit_service
from outreach.mailbox.service import mailbox_service
from outreach.models import ListStatus, User
from outreach.recipient.lists import ListCoverage, list_service
from outreach.resume.service import ResumeNotFound, resume_service
from outreach.template.service import template_service
from outreach.workflow.schemas import NextAction, OnboardingStatus, OnboardingStep

_SCHEDULED = ("scheduled", "sending", "paused", "completed")


@dataclass(frozen=True)
class StepReport:
    step: OnboardingStep
    action: NextAction | None = None  # what to do while the step is not done


Probe = Callable[[AsyncSession, User], Awaitable[StepReport]]


def _report(
    key: Any,
    title: str,
    done: bool,
    detail: str,
    todo: NextAction | None = None,
) -> StepReport:
    step = OnboardingStep(key=key, title=title, done=done, detail=detail)
    return StepReport(step, todo)


async def signed_in_step(session: AsyncSession, user: User) -> StepReport:
    return _report("signed_in", "Sign in", True, f"Signed in as {user.email}.")


async def mailbox_step(session: AsyncSession, user: User) -> StepReport:
    title = "Connect Gmail (or another mailbox)"
    active = await mailbox_service.active_mailboxes(session, user)
    problems = await mailbox_service.mailbox_problems(session, user)
    if problems:
        broken = problems[0]
        why = f": {broken.reason}" if broken.reason else ""
        return _report(
            "mailbox_connected",
            title,
            False,
            f"{broken.address} is {broken.status}{why}.",
            NextAction(
                action="reconnect_mailbox",
                title=f"Reconnect {broken.address}",
                reason=f"{broken.address} cannot send ({broken.status}); campaigns using it "
                "are paused until it is reconnected.",
                request="GET /v1/gmail/connect"
                if broken.provider == "gmail"
                else f"POST /v1/mailboxes/{broken.mailbox_id}/verify",
                resource_id=broken.mailbox_id,
            ),
        )
    if active:
        names = ", ".join(f"{m.address} ({m.provider.value})" for m in active)
        return _report("mailbox_connected", title, True, f"Sending from {names}.")
    return _report(
        "mailbox_connected",
        title,
        False,
        "No mailbox is connected.",
        NextAction(
            action="connect_gmail",
            title="Connect your Gmail",
            reason="Emails go out from your own address, so recruiters see and answer you.",
            request="GET /v1/gmail/connect",
        ),
    )


async def resume_step(session: AsyncSession, user: User) -> StepReport:
    title = "Upload your resume and get it analysed"
    try:
        resume, analysis = await resume_service.latest(session, user=user)
    except ResumeNotFound:
        return _report(
            "resume_analysed",
            title,
            False,
            "No resume uploaded yet.",
            NextAction(
                action="upload_resume",
                title="Upload your resume",
                reason="Templates use your role and skills from it, and campaigns can attach it.",
                request="POST /v1/resume/upload",
            ),
        )
    if analysis is None:
        return _report(
            "resume_analysed",
            title,
            False,
            f"{resume.file_name} is uploaded but not analysed.",
            NextAction(
                action="analyse_resume",
                title="Get your resume's ATS analysis",
                reason="See what an applicant tracking system reads, and fix it before "
                "recruiters see it.",
                request="POST /v1/resume/analyze",
                resource_id=resume.id,
            ),
        )
    scored = (
        f"scored {analysis.score} / 100"
        if analysis.score is not None
        else "could not be scored reliably; see the red flags in its analysis"
    )
    return _report("resume_analysed", title, True, f"{resume.file_name} {scored}.")


async def list_step(session: AsyncSession, user: User) -> StepReport:
    title = "Import a recipient list and verify it"
    lists = await list_service.verification_coverage(session, user_id=user.id)
    ready = [c for c in lists if c.status == ListStatus.ready and c.recipients]
    verified = [c for c in ready if c.unverified == 0]
    if verified:
        best = verified[0]
        return _report(
            "list_verified", title, True, f"'{best.name}': {best.recipients} addresses checked."
        )
    if ready:
        return await _verify_list_report(session, user, title, ready[0])
    importing = [c for c in lists if c.status in (ListStatus.queued, ListStatus.processing)]
    if importing:
        return _report(
            "list_verified",
            title,
            False,
            f"'{importing[0].name}' is still importing.",
            NextAction(
                action="wait_for_import",
                title=f"Wait for '{importing[0].name}' to finish importing",
                reason="Its rows are being read; verify it once it is ready.",
                request=f"GET /v1/recipients/lists/{importing[0].list_id}",
                resource_id=importing[0].list_id,
            ),
        )
    return _report(
        "list_verified",
        title,
        False,
        "No recipient list with addresses yet." if not lists else "No list has addresses yet.",
        NextAction(
            action="import_list",
            title="Import the recruiters you want to write to",
            reason="Upload a CSV or XLSX of names, companies and emails.",
            request="POST /v1/recipients/lists/upload",
        ),
    )


async def _verify_list_report(
    session: AsyncSession, user: User, title: str, coverage: ListCoverage
) -> StepReport:
    cost = coverage.unverified * pricing_from_settings(get_settings()).verify_per_address
    balance = await credit_service.get_balance(session, user_id=user.id)
    detail = (
        f"'{coverage.name}': {coverage.unverified} of {coverage.recipients} addresses unchecked."
    )
    if balance < cost:
        return _report(
            "list_verified",
            title,
            False,
            detail,
            NextAction(
                action="buy_credits",
                title="Buy credits to verify your list",
                reason=f"Verifying '{coverage.name}' costs {cost} credits and you have {balance}.",
                request="POST /v1/payments/orders",
            ),
        )
    return _report(
        "list_verified",
        title,
        False,
        detail,
        NextAction(
            action="verify_list",
            title=f"Verify '{coverage.name}'",
            reason=f"Bounces from unchecked addresses hurt your Gmail's reputation; checking "
            f"them costs {cost} credits.",
            request="POST /v1/verify/bulk",
            resource_id=coverage.list_id,
        ),
    )


async def template_step(session: AsyncSession, user: User) -> StepReport:
    count = await template_service.count(session, user=user)
    if count:
        return _report("template_created", "Write a template", True, f"{count} template(s) saved.")
    return _report(
        "template_created",
        "Write a template",
        False,
        "No template yet.",
        NextAction(
            action="create_template",
            title="Write your first template",
            reason="One short, personalised email; write it yourself or let AI draft it.",
            request="POST /v1/templates",
        ),
    )


async def campaign_step(session: AsyncSession, user: User) -> StepReport:
    title = "Schedule your first campaign"
    counts = await campaign_service.status_counts(session, user=user)
    scheduled = sum(counts.get(status, 0) for status in _SCHEDULED)
    if scheduled:
        return _report("campaign_scheduled", title, True, f"{scheduled} campaign(s) scheduled.")
    draft = await campaign_service.latest_draft(session, user=user)
    if draft is not None:
        return _report(
            "campaign_scheduled",
            title,
            False,
            f"'{draft.name}' is a draft.",
            NextAction(
                action="schedule_campaign",
                title=f"Check the plan for '{draft.name}' and schedule it",
                reason="The outreach plan shows what would be skipped, the cost and the schedule.",
                request=f"GET /v1/campaigns/{draft.id}/outreach-plan",
                resource_id=draft.id,
            ),
        )
    return _report(
        "campaign_scheduled",
        title,
        False,
        "No campaign yet.",
        NextAction(
            action="create_campaign",
            title="Create a campaign",
            reason="Pick a mailbox, a template and a list; emails go out in your sending window.",
            request="POST /v1/campaigns",
        ),
    )


# The steps in the order they are best done.
STEPS: list[tuple[str, Probe]] = [
    ("signed_in", signed_in_step),
    ("mailbox_connected", mailbox_step),
    ("resume_analysed", resume_step),
    ("list_verified", list_step),
    ("template_created", template_step),
    ("campaign_scheduled", campaign_step),
]


@dataclass
class OnboardingContext:
    session: AsyncSession
    user: User


class OnboardingState(TypedDict, total=False):
    reports: Annotated[list[StepReport], operator.add]
    status: OnboardingStatus


class StepNode:
    """A graph node that runs one step's probe and adds its report."""

    def __init__(self, probe: Probe) -> None:
        self.probe = probe

    async def __call__(
        self, state: OnboardingState, runtime: Runtime[OnboardingContext]
    ) -> OnboardingState:
        return {"reports": [await self.probe(runtime.context.session, runtime.context.user)]}


async def decide(state: OnboardingState) -> OnboardingState:
    reports = state["reports"]
    action = next((r.action for r in reports if not r.step.done and r.action), None)
    steps = [r.step for r in reports]
    return {
        "status": OnboardingStatus(
            steps=steps,
            completed=sum(step.done for step in steps),
            total=len(steps),
            next_action=action,
        )
    }


def build_onboarding_graph() -> StateGraph[OnboardingState, OnboardingContext, Any, Any]:
    graph: StateGraph[OnboardingState, OnboardingContext, Any, Any] = StateGraph(
        OnboardingState, context_schema=OnboardingContext
    )
    previous = START
    for key, probe in STEPS:
        graph.add_node(key, StepNode(probe))
        graph.add_edge(previous, key)
        previous = key
    graph.add_node("decide", decide)
    graph.add_edge(previous, "decide")
    graph.add_edge("decide", END)
    return graph


# Request-time graph: nothing to resume, so no checkpointer.
onboarding_graph = build_onboarding_graph().compile()


async def onboarding_status(session: AsyncSession, *, user: User) -> OnboardingStatus:
    """Where the user stands in getting started, and the next best action."""
    result = await onboarding_graph.ainvoke(
        {"reports": []}, context=OnboardingContext(session, user)
    )
    status: OnboardingStatus = result["status"]
    return status


def _flag(probe: Probe) -> Callable[[AsyncSession, User], Awaitable[bool]]:
    async def done(session: AsyncSession, user: User) -> bool:
        return (await probe(session, user)).step.done

    return done


# /v1/auth/me shows the same progress; the mailbox domain registers its own flag.
for _key, _probe in STEPS:
    if _key not in ("signed_in", "mailbox_connected"):
        register_onboarding_flag(_key, _flag(_probe))

"""LLM-written advice on an outreach plan, labelled as such.

The model sees the plan's numbers (checks, risks, schedule, cost) and the
template as written, never a recipient's address or name. Its text is added
beside the computed plan and changes nothing in it; without a configured
model, or when it does not answer, the advice section says so.
"""

from __future__ import annotations

import json

from outreach.kit.logging import get_logger
from outreach.llm.client import LLMError, Message
from outreach.llm.service import llm_service
from outreach.models import TemplateVersion
from outreach.workflow.schemas import OutreachPlan, PlanAdvice

log = get_logger("outreach.workflow.advice")

MAX_ADVICE_CHARS = 4000
NOT_CONFIGURED = PlanAdvice(
    source="none",
    note="No language model is configured (OUTREACH_LLM_BASE_URL, OUTREACH_LLM_MODEL): "
    "the plan above is computed without one.",
)
_SYSTEM = (
    "You review a job seeker's cold-email campaign before it is scheduled. You get the "
    "computed plan as JSON and the email template. Give at most five short, concrete "
    "pieces of advice as a plain list, most important first. Use only the numbers given; "
    "do not invent statistics. Do not repeat the plan back."
)


def _facts(plan: OutreachPlan, version: TemplateVersion | None) -> str:
    facts = plan.model_dump(mode="json", exclude={"advice", "campaign_id"})
    if version is not None:
        facts["template"] = {"subject": version.subject, "body": version.body_text}
    return json.dumps(facts, ensure_ascii=False)


async def write_advice(plan: OutreachPlan, version: TemplateVersion | None) -> PlanAdvice:
    """Advice from the configured model; a labelled empty section when it fails."""
    if not llm_service.configured():
        return NOT_CONFIGURED
    messages = [Message("system", _SYSTEM), Message("user", _facts(plan, version))]
    try:
        completion = await llm_service.complete(messages, temperature=0.2, max_tokens=500)
    except LLMError as exc:
        log.warning("outreach plan advice failed", error=str(exc))
        return PlanAdvice(
            source="none",
            note="The language model did not answer; the plan above is complete without it.",
        )
    return PlanAdvice(
        source="llm",
        model=completion.model,
        text=completion.content.strip()[:MAX_ADVICE_CHARS],
        note="Written by a language model from the plan's numbers and your template; the "
        "checks, risks and schedule above are computed and do not depend on it.",
    )

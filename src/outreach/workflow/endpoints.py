"""/v1/onboarding/status and /v1/campaigns/{id}/outreach-plan: the request-time graphs."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path

from outreach.auth.dependencies import CurrentUser
from outreach.campaign.service import campaign_service
from outreach.kit.db import SessionDep
from outreach.kit.errors import problem_responses
from outreach.kit.idempotency import IdempotentRoute
from outreach.workflow.onboarding import onboarding_status
from outreach.workflow.outreach_plan import outreach_plan
from outreach.workflow.schemas import OnboardingStatus, OutreachPlan

onboarding_router = APIRouter(
    prefix="/v1/onboarding", tags=["onboarding"], route_class=IdempotentRoute
)
plan_router = APIRouter(prefix="/v1/campaigns", tags=["campaigns"], route_class=IdempotentRoute)
CampaignID = Annotated[uuid.UUID, Path(description="The campaign's id")]


@onboarding_router.get(
    "/status",
    summary="Where you stand in getting started, and the next best action",
    responses=problem_responses(401),
)
async def get_onboarding_status(user: CurrentUser, session: SessionDep) -> OnboardingStatus:
    return await onboarding_status(session, user=user)


@plan_router.get(
    "/{campaign_id}/outreach-plan",
    summary="Readiness checks, risks, projected schedule and suggestions before scheduling",
    responses=problem_responses(401, 404, 422),
)
async def get_outreach_plan(
    campaign_id: CampaignID, user: CurrentUser, session: SessionDep
) -> OutreachPlan:
    campaign = await campaign_service.get(session, user=user, campaign_id=campaign_id)
    return await outreach_plan(session, user=user, campaign=campaign)

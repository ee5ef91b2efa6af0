"""/v1/campaigns: create, preview, schedule, watch and control campaigns."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from sqlalchemy import select

from outreach.auth.dependencies import CurrentUser, IdempotencyRequired
from outreach.campaign import tracking, views
from outreach.campaign.schemas import (
    ApproveOut,
    ApproveRequest,
    CampaignCreate,
    CampaignOut,
    CampaignUpdate,
    MarkRepliedIn,
    MarkRepliedOut,
    PreviewOut,
    ScheduledEmailOut,
    ScheduleOut,
    StatsOut,
    TestSendOut,
    TimelineOut,
)
from outreach.campaign.service import campaign_service
from outreach.kit.db import SessionDep
from outreach.kit.errors import problem_responses
from outreach.kit.idempotency import IdempotentRoute
from outreach.kit.pagination import Page, PaginationDep, paginate
from outreach.models.campaign import EmailStatus, ScheduledEmail

router = APIRouter(prefix="/v1/campaigns", tags=["campaigns"], route_class=IdempotentRoute)
CampaignID = Annotated[uuid.UUID, Path(description="The campaign's id")]
_WRITE = problem_responses(400, 401, 403, 404, 409, 422)


@router.post("", status_code=201, summary="Create a draft campaign", responses=_WRITE)
async def create_campaign(
    body: CampaignCreate, user: CurrentUser, session: SessionDep
) -> CampaignOut:
    campaign = await campaign_service.create(session, user=user, data=body)
    return await views.campaign_out(session, campaign)


@router.get(
    "", summary="Your campaigns with email counts", responses=problem_responses(400, 401, 422)
)
async def list_campaigns(
    user: CurrentUser, session: SessionDep, pagination: PaginationDep
) -> Page[CampaignOut]:
    campaigns, cursor = await campaign_service.list_campaigns(
        session, user=user, pagination=pagination
    )
    return Page(items=await views.campaigns_out(session, campaigns), next_cursor=cursor)


@router.get(
    "/{campaign_id}",
    summary="One campaign (ready / total shows draft progress)",
    responses=problem_responses(401, 404, 422),
)
async def get_campaign(
    campaign_id: CampaignID, user: CurrentUser, session: SessionDep
) -> CampaignOut:
    campaign = await campaign_service.get(session, user=user, campaign_id=campaign_id)
    return await views.campaign_out(session, campaign)


@router.patch("/{campaign_id}", summary="Edit a draft campaign", responses=_WRITE)
async def update_campaign(
    campaign_id: CampaignID, body: CampaignUpdate, user: CurrentUser, session: SessionDep
) -> CampaignOut:
    campaign = await campaign_service.get(session, user=user, campaign_id=campaign_id)
    await campaign_service.update(session, user=user, campaign=campaign, data=body)
    return await views.campaign_out(session, campaign)


@router.delete(
    "/{campaign_id}", status_code=204, summary="Delete a draft campaign", responses=_WRITE
)
async def delete_campaign(
    campaign_id: CampaignID, user: CurrentUser, session: SessionDep
) -> Response:
    campaign = await campaign_service.get(session, user=user, campaign_id=campaign_id)
    await campaign_service.delete(session, campaign=campaign)
    return Response(status_code=204)


@router.post(
    "/{campaign_id}/preview",
    summary="The first emails exactly as sent, skips, cost and schedule",
    responses=_WRITE,
)
async def preview_campaign(
    campaign_id: CampaignID,
    user: CurrentUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=50, description="How many emails to render")] = 5,
) -> PreviewOut:
    campaign = await campaign_service.get(session, user=user, campaign_id=campaign_id)
    return await views.preview(session, user=user, campaign=campaign, limit=limit)


@router.post(
    "/{campaign_id}/schedule",
    status_code=202,
    summary="Charge 1 credit per email and schedule the sends (Idempotency-Key required)",
    dependencies=[IdempotencyRequired],
    responses=problem_responses(400, 401, 402, 403, 404, 409, 422),
)
async def schedule_campaign(
    campaign_id: CampaignID, user: CurrentUser, session: SessionDep
) -> ScheduleOut:
    campaign = await campaign_service.get(session, user=user, campaign_id=campaign_id)
    scheduled, charged, skipped = await campaign_service.schedule(
        session, user=user, campaign=campaign
    )
    return ScheduleOut(
        campaign=await views.campaign_out(session, campaign),
        scheduled=scheduled,
        charged_credits=charged,
        skipped=skipped,
    )


@router.post(
    "/{campaign_id}/test-send",
    summary="Send one rendered email to yourself (free)",
    responses=_WRITE,
)
async def test_send(campaign_id: CampaignID, user: CurrentUser, session: SessionDep) -> TestSendOut:
    campaign = await campaign_service.get(session, user=user, campaign_id=campaign_id)
    return await views.test_send(session, user=user, campaign=campaign)


@router.post("/{campaign_id}/pause", summary="Stop sending until resumed", responses=_WRITE)
async def pause_campaign(
    campaign_id: CampaignID, user: CurrentUser, session: SessionDep
) -> CampaignOut:
    campaign = await campaign_service.get(session, user=user, campaign_id=campaign_id)
    await campaign_service.pause(session, campaign=campaign, reason="paused by you")
    return await views.campaign_out(session, campaign)


@router.post(
    "/{campaign_id}/resume", summary="Resume; overdue emails are spread from now", responses=_WRITE
)
async def resume_campaign(
    campaign_id: CampaignID, user: CurrentUser, session: SessionDep
) -> CampaignOut:
    campaign = await campaign_service.get(session, user=user, campaign_id=campaign_id)
    await campaign_service.resume(session, user=user, campaign=campaign)
    return await views.campaign_out(session, campaign)


@router.post(
    "/{campaign_id}/cancel",
    summary="Cancel unsent emails (refunded, drafts deleted)",
    responses=_WRITE,
)
async def cancel_campaign(
    campaign_id: CampaignID, user: CurrentUser, session: SessionDep
) -> CampaignOut:
    campaign = await campaign_service.get(session, user=user, campaign_id=campaign_id)
    await campaign_service.cancel(session, campaign=campaign)
    return await views.campaign_out(session, campaign)


@router.post(
    "/{campaign_id}/approve",
    summary="Release emails waiting for review (some or all)",
    responses=_WRITE,
)
async def approve_emails(
    campaign_id: CampaignID, body: ApproveRequest, user: CurrentUser, session: SessionDep
) -> ApproveOut:
    campaign = await campaign_service.get(session, user=user, campaign_id=campaign_id)
    return ApproveOut(
        approved=await campaign_service.approve(
            session, campaign=campaign, email_ids=body.email_ids
        )
    )


@router.get(
    "/{campaign_id}/emails",
    summary="The campaign's emails, by status",
    responses=problem_responses(400, 401, 404, 422),
)
async def list_emails(
    campaign_id: CampaignID,
    user: CurrentUser,
    session: SessionDep,
    pagination: PaginationDep,
    status: EmailStatus | None = None,
) -> Page[ScheduledEmailOut]:
    campaign = await campaign_service.get(session, user=user, campaign_id=campaign_id)
    statement = select(ScheduledEmail).where(ScheduledEmail.campaign_id == campaign.id)
    if status is not None:
        statement = statement.where(ScheduledEmail.status == status)
    emails, cursor = await paginate(
        session,
        statement,
        pagination,
        created_at=ScheduledEmail.created_at,
        id_column=ScheduledEmail.id,
    )
    return Page(
        items=[ScheduledEmailOut.model_validate(e, from_attributes=True) for e in emails],
        next_cursor=cursor,
    )


@router.get(
    "/{campaign_id}/stats",
    summary="Counts per status, unsubscribes, sends per day",
    responses=problem_responses(401, 404, 422),
)
async def campaign_stats(
    campaign_id: CampaignID, user: CurrentUser, session: SessionDep
) -> StatsOut:
    campaign = await campaign_service.get(session, user=user, campaign_id=campaign_id)
    return await views.stats(session, campaign=campaign)


@router.post(
    "/{campaign_id}/replied",
    summary="Mark a recipient as replied by hand (stops and refunds their follow-ups)",
    responses=problem_responses(401, 404, 409, 422),
)
async def mark_replied(
    campaign_id: CampaignID, body: MarkRepliedIn, user: CurrentUser, session: SessionDep
) -> MarkRepliedOut:
    campaign = await campaign_service.get(session, user=user, campaign_id=campaign_id)
    return await tracking.mark_replied(session, campaign=campaign, address=body.email)


@router.get(
    "/{campaign_id}/timeline",
    summary="One recipient's emails and what came back, in order",
    responses=problem_responses(401, 404, 422),
)
async def recipient_timeline(
    campaign_id: CampaignID,
    user: CurrentUser,
    session: SessionDep,
    email: Annotated[str, Query(min_length=3, max_length=320, description="The recipient")],
) -> TimelineOut:
    campaign = await campaign_service.get(session, user=user, campaign_id=campaign_id)
    return await tracking.timeline(session, campaign=campaign, address=email)

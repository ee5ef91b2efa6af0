"""/v1/credits: balance, ledger and prices."""

from __future__ import annotations

import dataclasses
from typing import Annotated

from fastapi import APIRouter, Query, Request

from outreach.auth.dependencies import CurrentUser
from outreach.credits.pricing import pricing_from_settings
from outreach.credits.schemas import Balance, LedgerEntryOut, PackOut, PricingOut
from outreach.credits.service import credit_service
from outreach.kit.db import SessionDep
from outreach.kit.errors import problem_responses
from outreach.kit.idempotency import IdempotentRoute
from outreach.kit.pagination import Page, PaginationDep
from outreach.models import LedgerReason

router = APIRouter(prefix="/v1/credits", tags=["credits"], route_class=IdempotentRoute)


@router.get("/balance", summary="Your credit balance", responses=problem_responses(401))
async def get_balance(user: CurrentUser, session: SessionDep) -> Balance:
    return Balance(balance=await credit_service.get_balance(session, user_id=user.id))


@router.get(
    "/ledger",
    summary="Your credit history, newest first",
    responses=problem_responses(400, 401, 422),
)
async def list_ledger(
    user: CurrentUser,
    session: SessionDep,
    pagination: PaginationDep,
    reason: Annotated[LedgerReason | None, Query(description="Only entries of this reason")] = None,
) -> Page[LedgerEntryOut]:
    entries, next_cursor = await credit_service.list_entries(
        session, user_id=user.id, pagination=pagination, reason=reason
    )
    return Page(items=[LedgerEntryOut.model_validate(e) for e in entries], next_cursor=next_cursor)


@router.get("/pricing", summary="What each action costs and the credit packs on sale")
async def get_pricing(request: Request) -> PricingOut:
    pricing = pricing_from_settings(request.app.state.settings)
    values = dataclasses.asdict(pricing)
    values["packs"] = [PackOut(**dataclasses.asdict(pack)) for pack in pricing.packs]
    return PricingOut(**values)

"""One-click unsubscribe (RFC 8058): ``GET /u/{token}`` asks, ``POST /u/{token}`` does it.

No session and no CSRF token: mail clients POST ``List-Unsubscribe=One-Click``
themselves. The token is signed and carries no readable address.
"""

from __future__ import annotations

import html

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.campaign import replies
from outreach.campaign.service import campaign_service
from outreach.kit.db import SessionDep
from outreach.kit.errors import BadRequest, problem_responses
from outreach.kit.idempotency import IdempotentRoute
from outreach.kit.signing import InvalidSignature
from outreach.kit.unsubscribe import UnsubscribeRequest, read_unsubscribe_token
from outreach.models import EmailEventKind, EmailEventSource, User
from outreach.models.campaign import EmailStatus, ScheduledEmail
from outreach.models.suppression import SuppressionReason
from outreach.recipient.suppression import suppression_service

router = APIRouter(tags=["unsubscribe"], route_class=IdempotentRoute)

_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1"><title>{title}</title></head>
<body style="font-family:sans-serif;max-width:32em;margin:3em auto;padding:0 1em">
<h1 style="font-size:1.3em">{title}</h1><p>{text}</p>{form}</body></html>"""


class InvalidUnsubscribeLink(BadRequest):
    code, title = "invalid_unsubscribe_link", "This unsubscribe link is not valid"


def _read(request: Request, token: str) -> UnsubscribeRequest:
    secret = request.app.state.settings.secret_key.get_secret_value()
    try:
        return read_unsubscribe_token(token, secret=secret)
    except InvalidSignature as exc:
        raise InvalidUnsubscribeLink("the link was altered or is incomplete") from exc


async def unsubscribe(session: AsyncSession, request: UnsubscribeRequest) -> int:
    """Suppress the address for that sender and cancel its waiting emails (refunded);
    idempotent. Returns how many emails were cancelled."""
    await suppression_service.add(
        session,
        user_id=request.sender_id,
        value=request.email,
        reason=SuppressionReason.unsubscribed,
        source=f"campaign:{request.campaign_id}" if request.campaign_id else "unsubscribe link",
    )
    # Locked like a reply's reaction (replies.record_event): an email the send tick
    # claimed first is ``sending`` once the lock is ours, and is not ended here.
    waiting = (
        await session.scalars(
            select(ScheduledEmail)
            .where(
                ScheduledEmail.user_id == request.sender_id,
                ScheduledEmail.to_address == request.email,
                ScheduledEmail.status.in_(replies.UNSENT),
            )
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).all()
    for email in waiting:
        await campaign_service.refund_email(session, email=email, status=EmailStatus.skipped)
    await session.flush()
    if request.campaign_id is not None:
        sent = await replies.latest_sent_to(
            session, campaign_id=request.campaign_id, address=request.email
        )
        if sent is not None:  # for the campaign's stats and the recipient's timeline
            await replies.record_event(
                session,
                email=sent,
                kind=EmailEventKind.unsubscribed,
                source=EmailEventSource.unsubscribe,
                dedupe_key="unsubscribe",
            )
    return len(waiting)


@router.get(
    "/u/{token}",
    summary="Unsubscribe page (asks for confirmation)",
    response_class=HTMLResponse,
    responses=problem_responses(400),
)
async def unsubscribe_page(token: str, request: Request, session: SessionDep) -> HTMLResponse:
    parsed = _read(request, token)
    sender = await session.get(User, parsed.sender_id)
    who = html.escape(sender.name or "the sender") if sender else "the sender"
    form = (
        f'<form method="post" action="/u/{html.escape(token, quote=True)}">'
        '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
        '<button type="submit">Unsubscribe</button></form>'
    )
    text = f"Stop receiving emails from {who}? One click and you will not hear from them again."
    return HTMLResponse(_PAGE.format(title="Unsubscribe", text=text, form=form))


@router.post(
    "/u/{token}",
    summary="One-click unsubscribe (RFC 8058); idempotent",
    response_class=HTMLResponse,
    responses=problem_responses(400),
)
async def unsubscribe_now(token: str, request: Request, session: SessionDep) -> HTMLResponse:
    parsed = _read(request, token)
    await unsubscribe(session, parsed)
    return HTMLResponse(
        _PAGE.format(
            title="You are unsubscribed",
            text="You will not receive further emails from this sender.",
            form="",
        )
    )

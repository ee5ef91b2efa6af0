"""/v1/mailboxes (CRUD, SMTP, outbox) and /v1/gmail (OAuth connect, verify, disconnect)."""

from __future__ import annotations

import uuid
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import RedirectResponse

from outreach.auth.dependencies import CurrentUser, secure_cookies, session_token
from outreach.auth.service import auth_service
from outreach.config import Settings
from outreach.kit.db import SessionDep
from outreach.kit.errors import AppError, problem_responses
from outreach.kit.idempotency import IdempotentRoute
from outreach.kit.pagination import Page, PaginationDep
from outreach.mailbox.connect import gmail_connect_service
from outreach.mailbox.oauth import STATE_COOKIE, STATE_TTL, InvalidState
from outreach.mailbox.schemas import (
    GmailConnectStart,
    MailboxOut,
    MailboxRef,
    MailboxUpdate,
    OutboxMailboxCreate,
    SmtpMailboxCreate,
)
from outreach.mailbox.service import mailbox_service
from outreach.models import MailboxMode

router = APIRouter(prefix="/v1/mailboxes", tags=["mailboxes"], route_class=IdempotentRoute)
gmail_router = APIRouter(prefix="/v1/gmail", tags=["gmail"], route_class=IdempotentRoute)

MailboxID = Annotated[uuid.UUID, Path(description="The mailbox id")]
CALLBACK_PATH = "/v1/gmail/callback"


@router.get("", summary="Your mailboxes, newest first", responses=problem_responses(400, 401))
async def list_mailboxes(
    user: CurrentUser, session: SessionDep, pagination: PaginationDep
) -> Page[MailboxOut]:
    rows, next_cursor = await mailbox_service.list_mailboxes(
        session, user=user, pagination=pagination
    )
    return Page(items=[MailboxOut.model_validate(m) for m in rows], next_cursor=next_cursor)


@router.get("/{mailbox_id}", summary="One mailbox", responses=problem_responses(401, 404, 422))
async def get_mailbox(mailbox_id: MailboxID, user: CurrentUser, session: SessionDep) -> MailboxOut:
    mailbox = await mailbox_service.get_mailbox(session, user=user, mailbox_id=mailbox_id)
    return MailboxOut.model_validate(mailbox)


@router.patch(
    "/{mailbox_id}",
    summary="Change daily cap, time zone, signature or display name",
    responses=problem_responses(401, 403, 404, 422),
)
async def update_mailbox(
    mailbox_id: MailboxID, body: MailboxUpdate, user: CurrentUser, session: SessionDep
) -> MailboxOut:
    mailbox = await mailbox_service.update_mailbox(
        session, user=user, mailbox_id=mailbox_id, changes=body
    )
    return MailboxOut.model_validate(mailbox)


@router.delete(
    "/{mailbox_id}",
    status_code=204,
    summary="Delete a mailbox (a Gmail grant is revoked at Google)",
    responses=problem_responses(401, 403, 404, 422),
)
async def delete_mailbox(mailbox_id: MailboxID, user: CurrentUser, session: SessionDep) -> Response:
    await mailbox_service.delete_mailbox(session, user=user, mailbox_id=mailbox_id)
    return Response(status_code=204)


@router.post(
    "/{mailbox_id}/verify",
    summary="Check any mailbox still works (status updated)",
    responses=problem_responses(401, 403, 404, 422, 429, 503),
)
async def verify_mailbox(
    mailbox_id: MailboxID, user: CurrentUser, session: SessionDep
) -> MailboxOut:
    mailbox = await mailbox_service.verify_mailbox(session, user=user, mailbox_id=mailbox_id)
    return MailboxOut.model_validate(mailbox)


@router.post(
    "/smtp",
    status_code=201,
    summary="Add an SMTP mailbox (the login is tested before saving)",
    responses=problem_responses(401, 403, 422),
)
async def create_smtp_mailbox(
    body: SmtpMailboxCreate, user: CurrentUser, session: SessionDep
) -> MailboxOut:
    mailbox = await mailbox_service.create_smtp_mailbox(session, user=user, data=body)
    return MailboxOut.model_validate(mailbox)


@router.post(
    "/outbox",
    status_code=201,
    summary='Add a file outbox mailbox ("provider": "outbox": writes .eml files, delivers nothing)',
    responses=problem_responses(401, 403, 422),
)
async def create_outbox_mailbox(
    body: OutboxMailboxCreate, user: CurrentUser, session: SessionDep
) -> MailboxOut:
    mailbox = await mailbox_service.create_outbox_mailbox(session, user=user, data=body)
    return MailboxOut.model_validate(mailbox)


# -- Gmail -------------------------------------------------------------------------------


@gmail_router.get(
    "/connect",
    summary="Start connecting Gmail: returns Google's consent URL",
    responses=problem_responses(401, 422, 503),
)
async def connect_gmail(
    request: Request,
    response: Response,
    user: CurrentUser,
    mode: Annotated[
        MailboxMode, Query(description="full: drafts + send confirmation; send_only: gmail.send")
    ] = MailboxMode.full,
) -> GmailConnectStart:
    start = gmail_connect_service.start(user=user, mode=mode)
    response.set_cookie(
        STATE_COOKIE,
        start.cookie,
        max_age=int(STATE_TTL.total_seconds()),
        path=CALLBACK_PATH,
        secure=secure_cookies(request.app.state.settings),
        httponly=True,
        samesite="lax",  # sent on Google's top-level redirect back to us
    )
    return GmailConnectStart(
        authorization_url=start.url,
        mode=start.mode,
        scopes=start.scopes,
        expires_at=start.expires_at,
    )


def _frontend_redirect(settings: Settings, **query: str) -> RedirectResponse:
    # Without a separate front end, the web app's mailboxes page shows the outcome.
    target = settings.frontend_url or f"{settings.base_url.rstrip('/')}/mailboxes"
    separator = "&" if "?" in target else "?"
    response = RedirectResponse(f"{target}{separator}{urlencode(query)}", status_code=303)
    response.delete_cookie(
        STATE_COOKIE,
        path=CALLBACK_PATH,
        secure=secure_cookies(settings),
        httponly=True,
        samesite="lax",
    )
    return response


@gmail_router.get(
    "/callback",
    summary="Google redirects here; the browser is sent on to the front end",
    status_code=303,
    response_class=RedirectResponse,  # no body: the 303 documents no content type
    responses={
        303: {
            "description": "To OUTREACH_FRONTEND_URL with ?mailbox_id= or ?error=",
            "headers": {"Location": {"schema": {"type": "string"}}},
        }
    },
)
async def gmail_callback(
    request: Request,
    session: SessionDep,
    state: Annotated[str | None, Query(max_length=2000)] = None,
    code: Annotated[str | None, Query(max_length=2000)] = None,
    error: Annotated[str | None, Query(max_length=200)] = None,
) -> RedirectResponse:
    settings: Settings = request.app.state.settings
    try:
        token = session_token(request)
        if token is None:
            raise InvalidState("sign in first, then connect Gmail from the same browser")
        user = await auth_service.authenticate(session, token)
        mailbox = await gmail_connect_service.complete(
            session,
            user=user,
            state=state,
            code=code,
            error=error,
            cookie=request.cookies.get(STATE_COOKIE),
            id_token_verifier=request.app.state.google_verifier,
        )
    except AppError as exc:
        return _frontend_redirect(settings, error=exc.code)
    return _frontend_redirect(
        settings, mailbox_id=str(mailbox.id), status="connected", provider="gmail"
    )


@gmail_router.post(
    "/verify",
    summary="Check a Gmail mailbox (profile call, or a token refresh in send-only mode)",
    responses=problem_responses(401, 403, 404, 422, 429, 503),
)
async def verify_gmail(body: MailboxRef, user: CurrentUser, session: SessionDep) -> MailboxOut:
    mailbox = await mailbox_service.verify_mailbox(
        session, user=user, mailbox_id=body.mailbox_id, gmail_only=True
    )
    return MailboxOut.model_validate(mailbox)


@gmail_router.post(
    "/disconnect",
    summary="Revoke our Gmail access at Google and forget the tokens",
    responses=problem_responses(401, 403, 404, 422),
)
async def disconnect_gmail(body: MailboxRef, user: CurrentUser, session: SessionDep) -> MailboxOut:
    mailbox = await mailbox_service.disconnect_gmail(session, user=user, mailbox_id=body.mailbox_id)
    return MailboxOut.model_validate(mailbox)

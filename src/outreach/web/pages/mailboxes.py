"""Mailboxes: connect Gmail (full or send-only), SMTP, the development outbox, reconnect."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response

from outreach.kit.db import SessionDep
from outreach.mailbox import endpoints as mailbox_api
from outreach.mailbox.schemas import MailboxOut, OutboxMailboxCreate, SmtpMailboxCreate
from outreach.mailbox.service import mailbox_service, outbox_allowed
from outreach.models import MailboxMode, User
from outreach.web.auth import FormUser, PageForm, PageUser
from outreach.web.pages.common import first_page, page_router, viewer
from outreach.web.rendering import (
    FormInvalid,
    parse_form,
    refused_form,
    render,
    see_other,
    typed_values,
)

router = page_router()

# What the Gmail callback's ?error= codes mean, in words.
CONNECT_ERRORS = {
    "access_denied": "You did not allow Outreach to use Gmail. Nothing was connected.",
    "missing_scopes": "Google did not grant every permission the chosen mode needs. "
    "Try again and leave every box ticked.",
    "invalid_state": "The connection attempt expired or came from another browser. Try again.",
}


async def _context(request: Request, session: SessionDep, user: User) -> dict[str, Any]:
    mailboxes, _ = await mailbox_service.list_mailboxes(
        session, user=user, pagination=first_page(request, 50)
    )
    return {
        "viewer": viewer(user),
        "mailboxes": [MailboxOut.model_validate(m) for m in mailboxes],
        "outbox_allowed": outbox_allowed(request.app.state.settings),
    }


@router.get("/mailboxes")
async def mailboxes_page(
    request: Request,
    user: PageUser,
    session: SessionDep,
    status: str | None = None,
    error: str | None = None,
) -> Response:
    context = await _context(request, session, user)
    if status == "connected":
        context["notice"] = "Gmail is connected."
    if error:
        context["connect_error"] = CONNECT_ERRORS.get(
            error, f"Gmail could not be connected ({error.replace('_', ' ')})."
        )
    return render(request, "mailboxes.html", context)


@router.post("/mailboxes/outbox")
async def add_outbox(
    request: Request, user: FormUser, session: SessionDep, form: PageForm
) -> Response:
    context = {**await _context(request, session, user), "values": typed_values(form)}
    async with refused_form("mailboxes.html", context):
        data = parse_form(OutboxMailboxCreate, _fields(form, "address", "display_name", "timezone"))
        await mailbox_service.create_outbox_mailbox(session, user=user, data=data)
    return see_other("/mailboxes")


@router.post("/mailboxes/smtp")
async def add_smtp(
    request: Request, user: FormUser, session: SessionDep, form: PageForm
) -> Response:
    context = {**await _context(request, session, user), "values": typed_values(form)}
    async with refused_form("mailboxes.html", context):
        fields = _fields(
            form,
            "address",
            "display_name",
            "host",
            "port",
            "security",
            "username",
            "password",
            "timezone",
        )
        if str(fields.get("port", "")).isdigit():
            fields["port"] = int(fields["port"])
        data = parse_form(SmtpMailboxCreate, fields)
        await mailbox_service.create_smtp_mailbox(session, user=user, data=data)
    return see_other("/mailboxes")


@router.post("/mailboxes/gmail")
async def connect_gmail(
    request: Request, user: FormUser, session: SessionDep, form: PageForm
) -> Response:
    """Off to Google's consent page, with the API's state cookie (a reconnect is the same)."""
    context = {**await _context(request, session, user), "values": typed_values(form)}
    async with refused_form("mailboxes.html", context):
        mode = _mode(form.get("mode"))
        cookies = Response()
        start = await mailbox_api.connect_gmail(request, cookies, user, mode)
    redirect = see_other(start.authorization_url)
    redirect.raw_headers.extend(h for h in cookies.raw_headers if h[0] == b"set-cookie")
    return redirect


def _fields(form: Any, *names: str) -> dict[str, Any]:
    """The named fields the user filled in; an empty field takes the schema's default."""
    return {name: form.get(name) for name in names if form.get(name) not in (None, "")}


def _mode(value: object) -> MailboxMode:
    try:
        return MailboxMode(str(value or MailboxMode.full.value))
    except ValueError as exc:
        raise FormInvalid("choose full access or send-only") from exc

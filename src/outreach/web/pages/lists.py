"""Recipient lists: upload with live progress, the row errors, the recipients,
verification and enrichment (each with its cost shown before it starts)."""

from __future__ import annotations

import uuid
from typing import Any, cast

from fastapi import Request, Response, UploadFile
from starlette.datastructures import UploadFile as FormFile

from outreach.credits.pricing import pricing_from_settings
from outreach.credits.service import credit_service
from outreach.kit.db import SessionDep
from outreach.models import ListKind, User, VerificationJobKind
from outreach.recipient.endpoints.common import job_out, list_out
from outreach.recipient.enrichment import enrichment_service
from outreach.recipient.importing import import_service
from outreach.recipient.lists import list_service
from outreach.recipient.schemas import ImportErrorOut, RecipientOut
from outreach.recipient.verification import verification_service
from outreach.web.auth import FormUser, PageForm, PageUser
from outreach.web.idempotency import answered, claim_form_key
from outreach.web.pages.common import first_page, page_router, viewer
from outreach.web.rendering import FormInvalid, refused_form, render, see_other, typed_values

router = page_router()
ROWS_SHOWN = 50


def secret(request: Request) -> bytes:
    return str(request.app.state.settings.secret_key.get_secret_value()).encode()


async def _lists_context(request: Request, session: SessionDep, user: User) -> dict[str, Any]:
    lists, _ = await list_service.list_lists(
        session, user_id=user.id, pagination=first_page(request, 50)
    )
    return {"viewer": viewer(user), "lists": [list_out(item) for item in lists]}


@router.get("/lists")
async def lists_page(request: Request, user: PageUser, session: SessionDep) -> Response:
    return render(request, "lists.html", await _lists_context(request, session, user))


@router.post("/lists")
async def upload_list(
    request: Request, user: FormUser, session: SessionDep, form: PageForm
) -> Response:
    context = {**await _lists_context(request, session, user), "values": typed_values(form)}
    async with refused_form("lists.html", context):
        file = form.get("file")
        if not isinstance(file, FormFile) or not file.filename:
            raise FormInvalid("choose a CSV or XLSX file to upload")
        created = await import_service.start_upload(
            session,
            storage=request.app.state.storage,
            user_id=user.id,
            kind=ListKind.recipients,
            file=cast(UploadFile, file),  # the same object FastAPI would hand the API
            name=str(form.get("name") or "") or None,
            column_mapping=None,
            sheet=None,
        )
    return see_other(f"/lists/{created.id}")


@router.get("/lists/{list_id}")
async def list_page(
    request: Request,
    list_id: uuid.UUID,
    user: PageUser,
    session: SessionDep,
    job: uuid.UUID | None = None,
    enrich: uuid.UUID | None = None,
) -> Response:
    context = await _list_context(request, session, user, list_id, job, enrich)
    return render(request, "list.html", context)


@router.post("/lists/{list_id}/verify")
async def verify_list(
    request: Request, list_id: uuid.UUID, user: FormUser, session: SessionDep, form: PageForm
) -> Response:
    """Bulk verification after the cost was shown; the form's key makes a second click
    the same job (web.idempotency)."""
    context = await _list_context(request, session, user, list_id, None, None)
    async with refused_form("list.html", context):
        claimed = await claim_form_key(request, session, user, form)
        job = await verification_service.start_bulk(
            session, user_id=user.id, list_id=list_id, emails=None, idempotency_key=claimed.key
        )
    return await answered(claimed, see_other(f"/lists/{list_id}?job={job.id}#verification"))


@router.post("/lists/{list_id}/enrich")
async def enrich_list(
    request: Request, list_id: uuid.UUID, user: FormUser, session: SessionDep, form: PageForm
) -> Response:
    """Find addresses at the list's companies, after the held credits were shown; the
    same service call as ``POST /v1/enrich/bulk``, once per form (web.idempotency)."""
    context = await _list_context(request, session, user, list_id, None, None)
    context["values"] = typed_values(form)
    async with refused_form("list.html", context):
        claimed = await claim_form_key(request, session, user, form)
        add_here = form.get("add_to_list") == "on"
        job = await enrichment_service.start_bulk(
            session,
            user_id=user.id,
            companies=None,
            list_id=list_id,
            add_to_list_id=list_id if add_here else None,
            idempotency_key=claimed.key,
        )
    return await answered(claimed, see_other(f"/lists/{list_id}?enrich={job.id}#enrichment"))


async def _list_context(
    request: Request,
    session: SessionDep,
    user: User,
    list_id: uuid.UUID,
    job_id: uuid.UUID | None,
    enrich_id: uuid.UUID | None,
) -> dict[str, Any]:
    found = await list_service.get_list(session, user_id=user.id, list_id=list_id)
    errors, more_errors = await list_service.list_errors(
        session, recipient_list=found, limit=ROWS_SHOWN, cursor=None, secret=secret(request)
    )
    items, more_items = await list_service.list_items(
        session, recipient_list=found, limit=ROWS_SHOWN, cursor=None, secret=secret(request)
    )
    job = None
    if job_id is not None:
        job = await verification_service.get_job(
            session, user_id=user.id, job_id=job_id, kind=VerificationJobKind.verify.value
        )
    enrich_job = None
    if enrich_id is not None:
        enrich_job = await verification_service.get_job(
            session, user_id=user.id, job_id=enrich_id, kind=VerificationJobKind.enrich.value
        )
    return {
        "viewer": viewer(user),
        "list": list_out(found, await list_service.count_recipients(session, list_id=found.id)),
        "errors": [ImportErrorOut.model_validate(e) for e in errors],
        "more_errors": more_errors is not None,
        "items": [RecipientOut.model_validate(i) for i in items],
        "more_items": more_items is not None,
        "job": job_out(job) if job is not None else None,
        "verify_key": f"web-verify:{uuid.uuid4()}",
        "enrich_key": f"web-enrich:{uuid.uuid4()}",
        "enrich_job": job_out(enrich_job, with_results=True) if enrich_job else None,
        # Only a ready list can be enriched; while it imports the page refreshes often.
        "enrich_quote": await enrichment_service.quote_list(
            session, user_id=user.id, list_id=found.id
        )
        if found.status.value == "ready"
        else None,
        "verify_price": pricing_from_settings(request.app.state.settings).verify_per_address,
        "balance": await credit_service.get_balance(session, user_id=user.id),
    }

"""A form that starts paid work carries a key, used as the API's ``Idempotency-Key``:
the same form sent twice (a double click, a reload that resends it) gets the first
answer again, a redirect to the same job or template, and is charged once.

The API's own machinery (:func:`claim_idempotency_key`, the same table, lock and expiry)
does it; as a form body was already read, the request is hashed from its fields.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

from fastapi import Request, Response
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from outreach.kit.idempotency import HEADER, IdempotencyContext, claim_idempotency_key
from outreach.models import User
from outreach.web.auth import with_header
from outreach.web.rendering import CSRF_FIELD, FormInvalid

KEY_FIELD = "run_key"


def form_hash(request: Request, form: FormData) -> str:
    """The request as the API would hash it: method, path, and the fields sent (the
    CSRF token left out: it is the session's, not the request's)."""
    fields = sorted((k, v) for k, v in form.multi_items() if isinstance(v, str) and k != CSRF_FIELD)
    data = json.dumps([request.method, request.url.path, request.url.query, fields])
    return hashlib.sha256(data.encode()).hexdigest()


async def claim_form_key(
    request: Request, session: AsyncSession, user: User, form: FormData
) -> IdempotencyContext:
    """Claim the form's key for this transaction; a key already answered raises the
    API's ``IdempotentReplay`` (the page route sends the stored redirect)."""
    key = form.get(KEY_FIELD)
    if not isinstance(key, str) or not key:
        raise FormInvalid("the form lost its key; reload the page and try again")
    context = await claim_idempotency_key(
        with_header(request, HEADER, key),
        session,
        caller=f"web:{user.id}",
        required=True,
        ttl=timedelta(hours=request.app.state.settings.idempotency_ttl_hours),
        request_hash=form_hash(request, form),
    )
    assert context is not None  # required=True: a key was given
    return context


async def answered(context: IdempotencyContext, response: Response) -> Response:
    """Keep ``response`` (a redirect) as the answer to this key, in the same transaction
    as the work it reports."""
    await context.store(response)
    return response

"""Who is looking at a page: the API's own session and CSRF checks.

A page's form cannot send the ``X-CSRF-Token`` header, so its hidden field is put
where the header would be and the request goes through the API's dependency
(:func:`get_current_user`): one check, whatever it becomes.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.datastructures import FormData

from outreach.auth.dependencies import CSRF_HEADER, get_current_user
from outreach.kit.db import SessionDep
from outreach.kit.errors import Unauthorized
from outreach.models import User
from outreach.web.rendering import CSRF_FIELD, SignInFirst


def with_header(request: Request, name: str, value: str) -> Request:
    """The same request with one header set, as an API client would send it (a form
    cannot set headers)."""
    header = name.lower().encode()
    headers = [(k, v) for k, v in request.scope["headers"] if k != header]
    scope = {**request.scope, "headers": [*headers, (header, value.encode())]}
    return Request(scope, request.receive)


def with_form_token(request: Request, token: str) -> Request:
    """The same request, with the form's token in the CSRF header."""
    return with_header(request, CSRF_HEADER, token)


async def page_user(request: Request, session: SessionDep) -> User:
    """The signed-in user of a page (GET); anyone else is sent to sign in."""
    try:
        return await get_current_user(request, session)
    except Unauthorized as exc:
        raise SignInFirst(exc.detail) from exc


async def page_form(request: Request) -> FormData:
    return await request.form()


async def form_user(
    request: Request, session: SessionDep, form: Annotated[FormData, Depends(page_form)]
) -> User:
    """The signed-in user of a form post, after the API's CSRF check on its token."""
    token = form.get(CSRF_FIELD)
    checked = with_form_token(request, token if isinstance(token, str) else "")
    try:
        return await get_current_user(checked, session)
    except Unauthorized as exc:
        raise SignInFirst(exc.detail) from exc


PageUser = Annotated[User, Depends(page_user)]
FormUser = Annotated[User, Depends(form_user)]
PageForm = Annotated[FormData, Depends(page_form)]

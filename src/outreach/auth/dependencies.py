"""Who is calling: the session cookie, CSRF protection, and the role guards."""

from __future__ import annotations

import hmac
from typing import Annotated
from urllib.parse import urlsplit

import structlog
from fastapi import Depends, Request

from outreach.auth.service import auth_service, hash_token
from outreach.config import Environment, Settings
from outreach.kit.db import SessionDep
from outreach.kit.errors import Forbidden, Unauthorized
from outreach.kit.idempotency import idempotency_dependency
from outreach.kit.openapi import declares_problems
from outreach.kit.signing import keyed_digest
from outreach.models import User, UserRole

CSRF_COOKIE = "outreach_csrf"  # production: __Host-outreach_csrf (csrf_cookie_name)
CSRF_HEADER = "X-CSRF-Token"
_CSRF_PURPOSE = "csrf"
_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
UNSAFE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


class NotAuthenticated(Unauthorized):
    code, title = "not_authenticated", "Sign in first"


class CsrfFailed(Forbidden):
    code, title = "csrf_failed", "Cross-site request refused"


class AdminRequired(Forbidden):
    code, title = "admin_required", "Administrators only"


def secure_cookies(settings: Settings) -> bool:
    # Tests run over plain http like development; production cookies are Secure.
    return settings.env == Environment.production


def session_cookie_name(settings: Settings) -> str:
    return "__Host-outreach_session" if secure_cookies(settings) else "outreach_session"


def csrf_cookie_name(settings: Settings) -> str:
    # __Host-: Secure, Path=/ and no Domain, so no sibling subdomain can plant it.
    return f"__Host-{CSRF_COOKIE}" if secure_cookies(settings) else CSRF_COOKIE


def csrf_token_for(session_token: str, settings: Settings) -> str:
    """The CSRF token of one session: an HMAC, under the secret key, of the session
    token's hash. A value anyone else chose, or another session's, never matches."""
    return keyed_digest(
        hash_token(session_token),
        secret=settings.secret_key.get_secret_value(),
        purpose=_CSRF_PURPOSE,
    )


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None


def check_origin(request: Request, settings: Settings) -> None:
    """Refuse an unsafe request whose Origin (or Referer) is not one of ours."""
    allowed = {o.rstrip("/") for o in settings.cors_origins}
    if own := _origin(settings.base_url):
        allowed.add(own)
    # Same-origin requests (the API's own /docs page) are never cross-site.
    if here := _origin(str(request.base_url)):
        allowed.add(here)
    origin = request.headers.get("origin")
    if origin is None and (referer := request.headers.get("referer")):
        origin = _origin(referer)
    if origin is not None and origin.rstrip("/") not in allowed:
        raise CsrfFailed(f"requests from {origin} are not allowed")


def check_csrf(request: Request, settings: Settings, session_token: str) -> None:
    """The session's own token in the header, plus the Origin/Referer check."""
    check_origin(request, settings)
    header = request.headers.get(CSRF_HEADER, "")
    expected = csrf_token_for(session_token, settings)
    if not hmac.compare_digest(header.encode(), expected.encode()):
        raise CsrfFailed(
            f"send the {csrf_cookie_name(settings)} cookie's value in the {CSRF_HEADER} header"
        )


def session_token(request: Request) -> str | None:
    return request.cookies.get(session_cookie_name(request.app.state.settings)) or None


def request_csrf_token(request: Request) -> str:
    """The CSRF token of the request's session ("" without one), for a page's forms."""
    token = session_token(request)
    return csrf_token_for(token, request.app.state.settings) if token else ""


@declares_problems(401)
@declares_problems(403, methods=UNSAFE_METHODS)  # csrf_failed
async def get_current_user(request: Request, session: SessionDep) -> User:
    settings: Settings = request.app.state.settings
    token = session_token(request)
    if token is None:
        raise NotAuthenticated("this endpoint needs a signed-in session")
    if request.method not in _SAFE_METHODS:
        check_csrf(request, settings, token)
    user = await auth_service.authenticate(session, token)
    request.state.user_id = str(user.id)
    structlog.contextvars.bind_contextvars(user_id=str(user.id))
    return user


@declares_problems(403)
async def require_admin(user: Annotated[User, Depends(get_current_user)]) -> User:
    if user.role != UserRole.admin:
        raise AdminRequired("this endpoint is for administrators")
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]
AdminUser = Annotated[User, Depends(require_admin)]


async def user_scope(user: CurrentUser) -> str:
    return f"user:{user.id}"


IdempotencyRequired = idempotency_dependency(required=True, caller=user_scope)
IdempotencyOptional = idempotency_dependency(required=False, caller=user_scope)

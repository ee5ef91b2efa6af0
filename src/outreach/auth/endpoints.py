"""/v1/auth: sign in with Google (or the development login), sign out, who am I."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from outreach.auth.dependencies import (
    CurrentUser,
    check_origin,
    csrf_cookie_name,
    csrf_token_for,
    secure_cookies,
    session_cookie_name,
    session_token,
)
from outreach.auth.schemas import DevLogin, GoogleSignIn, Me, SignInResult
from outreach.auth.service import SignIn, auth_service
from outreach.auth.views import me_view
from outreach.config import Settings
from outreach.kit.db import SessionDep
from outreach.kit.errors import problem_responses
from outreach.kit.idempotency import IdempotentRoute
from outreach.kit.ratelimit import RateLimiter

router = APIRouter(prefix="/v1/auth", tags=["auth"], route_class=IdempotentRoute)
dev_router = APIRouter(prefix="/v1/auth", tags=["auth"], route_class=IdempotentRoute)


def _set_session_cookies(response: Response, settings: Settings, token: str) -> None:
    secure = secure_cookies(settings)
    max_age = settings.session_absolute_days * 86400
    response.set_cookie(
        session_cookie_name(settings),
        token,
        max_age=max_age,
        path="/",
        secure=secure,
        httponly=True,
        samesite="lax",
    )
    set_csrf_cookie(response, settings, token)


def set_csrf_cookie(response: Response, settings: Settings, session_token: str) -> None:
    """The session's CSRF token, readable by the web app (it echoes it in X-CSRF-Token)."""
    response.set_cookie(
        csrf_cookie_name(settings),
        csrf_token_for(session_token, settings),
        max_age=settings.session_absolute_days * 86400,
        path="/",
        secure=secure_cookies(settings),
        httponly=False,
        samesite="lax",
    )


async def _limit_sign_in(request: Request) -> None:
    settings: Settings = request.app.state.settings
    check_origin(request, settings)
    limiter = RateLimiter(database=request.app.state.database, redis=request.app.state.redis)
    ip = request.client.host if request.client else "unknown"
    await limiter.hit(
        f"signin:{ip}",
        limit=settings.signin_rate_limit,
        window_seconds=settings.signin_rate_window_seconds,
    )


async def _signed_in(
    session: SessionDep, result: SignIn, response: Response, request: Request
) -> SignInResult:
    _set_session_cookies(response, request.app.state.settings, result.token)
    me = await me_view(session, result.user)
    return SignInResult(**me.model_dump(), new_user=result.new_user)


@router.post(
    "/google",
    summary="Sign in with a Google ID token",
    responses=problem_responses(401, 403, 409, 422, 429, 503),
)
async def sign_in_with_google(
    body: GoogleSignIn, request: Request, response: Response, session: SessionDep
) -> SignInResult:
    await _limit_sign_in(request)
    identity = await request.app.state.google_verifier.verify(body.credential)
    result = await auth_service.sign_in_with_google(
        session,
        identity,
        user_agent=request.headers.get("user-agent"),
        ip=request.client.host if request.client else None,
        previous_token=session_token(request),
    )
    return await _signed_in(session, result, response, request)


@dev_router.post(
    "/dev-login",
    summary="Development only: sign in as any email address",
    responses=problem_responses(403, 422, 429),
)
async def dev_login(
    body: DevLogin, request: Request, response: Response, session: SessionDep
) -> SignInResult:
    await _limit_sign_in(request)
    result = await auth_service.dev_login(
        session,
        email=str(body.email),
        name=body.name,
        user_agent=request.headers.get("user-agent"),
        ip=request.client.host if request.client else None,
        previous_token=session_token(request),
    )
    return await _signed_in(session, result, response, request)


@router.post(
    "/logout",
    status_code=204,
    summary="Sign out (deletes the session)",
    responses=problem_responses(401, 403),
)
async def logout(request: Request, user: CurrentUser, session: SessionDep) -> Response:
    token = session_token(request)
    assert token is not None  # CurrentUser guarantees it
    await auth_service.logout(session, user=user, token=token)
    response = Response(status_code=204)
    settings: Settings = request.app.state.settings
    response.delete_cookie(
        session_cookie_name(settings),
        path="/",
        secure=secure_cookies(settings),
        httponly=True,
        samesite="lax",
    )
    response.delete_cookie(
        csrf_cookie_name(settings), path="/", secure=secure_cookies(settings), samesite="lax"
    )
    return response


@router.get("/me", summary="The signed-in user", responses=problem_responses(401))
async def me(request: Request, response: Response, user: CurrentUser, session: SessionDep) -> Me:
    settings: Settings = request.app.state.settings
    token = session_token(request)
    assert token is not None  # CurrentUser guarantees it
    # Missing, stale or planted: the browser gets this session's token back.
    if request.cookies.get(csrf_cookie_name(settings)) != csrf_token_for(token, settings):
        set_csrf_cookie(response, settings, token)
    return await me_view(session, user)

"""Connecting Gmail: the start of the OAuth flow and its callback."""

from __future__ import annotations

import contextlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from outreach.auth.google import GoogleTokenVerifier, InvalidGoogleToken
from outreach.config import get_settings
from outreach.kit.clock import utcnow
from outreach.mailbox.gmail import GmailClient, GmailError, GmailRefused, GmailUnauthorized
from outreach.mailbox.http import google_http
from outreach.mailbox.oauth import (
    REQUIRED_SCOPES,
    SCOPES,
    STATE_TTL,
    CodeRejected,
    ConsentDenied,
    GoogleOAuth,
    GoogleOAuthUnavailable,
    MissingCode,
    MissingScopes,
    OAuthFailed,
    StateClaims,
    TokenResponse,
    authorization_url,
    client_credentials,
    pkce_pair,
    read_state,
    read_state_cookie,
    sign_state,
    state_cookie_value,
)
from outreach.mailbox.service import gmail_budget, mailbox_service
from outreach.models import Mailbox, MailboxMode, User


class ProfileUnreadable(OAuthFailed):
    code, title = "profile_unreadable", "Gmail's profile could not be read with the new grant"


class MissingEmail(OAuthFailed):
    code, title = "missing_email", "Google did not tell us the account's verified address"


@dataclass(frozen=True)
class ConnectStart:
    url: str
    cookie: str  # the value of the state cookie (encrypted nonce + PKCE verifier)
    mode: MailboxMode
    scopes: list[str]
    expires_at: datetime


class GmailConnectService:
    def start(self, *, user: User, mode: MailboxMode) -> ConnectStart:
        """The Google consent URL and the cookie that binds it to this browser."""
        settings = get_settings()
        client_credentials(settings)  # a clear 503 now rather than at Google
        nonce = secrets.token_urlsafe(24)
        verifier, challenge = pkce_pair()
        claims = StateClaims(
            user_id=user.id, nonce=nonce, mode=mode, expires_at=utcnow() + STATE_TTL
        )
        state = sign_state(settings, claims)
        return ConnectStart(
            url=authorization_url(settings, state=state, challenge=challenge, mode=mode),
            cookie=state_cookie_value(nonce=nonce, verifier=verifier, user_id=user.id),
            mode=mode,
            scopes=SCOPES[mode],
            expires_at=claims.expires_at,
        )

    async def complete(
        self,
        session: AsyncSession,
        *,
        user: User,
        state: str | None,
        code: str | None,
        error: str | None,
        cookie: str | None,
        id_token_verifier: GoogleTokenVerifier,
    ) -> Mailbox:
        """Check state, cookie and user, exchange the code, check the granted scopes,
        learn the address, then store the mailbox. Nothing is stored on any failure."""
        settings = get_settings()
        claims = read_state(settings, state)
        code_verifier = read_state_cookie(cookie, claims)
        if claims.user_id != user.id:
            raise OAuthFailed("this connection was started by another user")
        if error is not None:
            if error == "access_denied":
                raise ConsentDenied("you did not allow access to Gmail")
            raise OAuthFailed(f"Google answered {error}")
        if not code:
            raise MissingCode("the callback carried no code")
        oauth = GoogleOAuth(google_http(), settings)
        tokens = await oauth.exchange_code(code=code, verifier=code_verifier)
        try:
            address, sub = await self._address(tokens, claims.mode, user, id_token_verifier)
        except OAuthFailed:
            await self._forget(oauth, tokens)
            raise
        if tokens.refresh_token is None:
            await self._forget(oauth, tokens)
            raise CodeRejected("Google sent no refresh token; remove the app's access and retry")
        return await mailbox_service.store_gmail_grant(
            session,
            user=user,
            address=address,
            mode=claims.mode,
            google_sub=sub,
            refresh_token=tokens.refresh_token,
            access_token=tokens.access_token,
            expires_in=tokens.expires_in,
            scopes=tokens.scopes,
        )

    async def _address(
        self,
        tokens: TokenResponse,
        mode: MailboxMode,
        user: User,
        id_token_verifier: GoogleTokenVerifier,
    ) -> tuple[str, str | None]:
        missing = REQUIRED_SCOPES[mode] - set(tokens.scopes)
        if missing:
            raise MissingScopes(
                "allow every permission on Google's screen: " + ", ".join(sorted(missing)),
                missing=sorted(missing),
            )
        email, sub = await self._id_token_identity(tokens, id_token_verifier)
        if mode == MailboxMode.send_only:
            if email is None:
                raise MissingEmail("Google's ID token carried no verified email")
            return email, sub
        profile_address = await self._profile_address(tokens, user.id)
        return profile_address, sub

    @staticmethod
    async def _id_token_identity(
        tokens: TokenResponse, verifier: GoogleTokenVerifier
    ) -> tuple[str | None, str | None]:
        if not tokens.id_token:
            return None, None
        client_id, _ = client_credentials(get_settings())
        # The token came straight from Google's token endpoint; verify it anyway,
        # for our OAuth client (which may differ from the sign-in client ids).
        checker = GoogleTokenVerifier(verifier.keys, [client_id])
        try:
            identity = await checker.verify(tokens.id_token)
        except InvalidGoogleToken as exc:
            raise MissingEmail(f"Google's ID token was not acceptable: {exc.detail}") from exc
        return identity.email, identity.sub

    @staticmethod
    async def _profile_address(tokens: TokenResponse, user_id: uuid.UUID) -> str:
        async def fixed_token(rejected: str | None) -> str:
            if rejected is not None:
                raise GmailUnauthorized("the new access token was refused")
            return tokens.access_token

        settings = get_settings()
        client = GmailClient(
            http=google_http(),
            base_url=settings.gmail_api_url,
            access_token=fixed_token,
            budget=gmail_budget(settings),
            budget_key=f"connect:{user_id}",
            max_retries=settings.gmail_max_retries,
            retry_base_seconds=settings.gmail_retry_base_seconds,
            timeout=settings.gmail_timeout_seconds,
        )
        try:
            profile = await client.get_profile()
        except (GmailUnauthorized, GmailRefused, GmailError) as exc:
            raise ProfileUnreadable(f"users.getProfile failed: {exc}") from exc
        return str(profile["emailAddress"]).lower()

    @staticmethod
    async def _forget(oauth: GoogleOAuth, tokens: TokenResponse) -> None:
        """Revoke a grant we will not keep (best effort)."""
        with contextlib.suppress(GoogleOAuthUnavailable):
            await oauth.revoke(tokens.refresh_token or tokens.access_token)


gmail_connect_service = GmailConnectService()

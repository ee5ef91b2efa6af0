"""Google's OAuth 2.0 web-server flow for Gmail: state, PKCE, token endpoint, revocation.

``state`` is HMAC-signed (user, nonce, mode, expiry); the PKCE verifier and the
same nonce travel in an encrypted ``SameSite=Lax`` cookie, so the callback only
accepts a state minted for this browser and this signed-in user, within 10 minutes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx

from outreach.config import Settings
from outreach.kit.clock import utcnow
from outreach.kit.crypto import SecretDecryptionFailed, decrypt_secret, encrypt_secret
from outreach.kit.errors import BadRequest, ServiceUnavailable
from outreach.kit.signing import b64url_decode, b64url_encode
from outreach.models import MailboxMode

GMAIL_COMPOSE = "https://www.googleapis.com/auth/gmail.compose"
GMAIL_METADATA = "https://www.googleapis.com/auth/gmail.metadata"
GMAIL_SEND = "https://www.googleapis.com/auth/gmail.send"
USERINFO_EMAIL = "https://www.googleapis.com/auth/userinfo.email"
SCOPES: dict[MailboxMode, list[str]] = {
    MailboxMode.full: ["openid", "email", GMAIL_COMPOSE, GMAIL_METADATA],
    MailboxMode.send_only: ["openid", "email", GMAIL_SEND],
}
# What must come back granted (Google reports "email" as the userinfo.email URL).
REQUIRED_SCOPES: dict[MailboxMode, set[str]] = {
    MailboxMode.full: {GMAIL_COMPOSE, GMAIL_METADATA},
    MailboxMode.send_only: {GMAIL_SEND},
}
STATE_TTL = timedelta(minutes=10)
STATE_COOKIE = "outreach_gmail_oauth"


class OAuthFailed(BadRequest):
    """Base of the callback's errors; ``code`` goes into the redirect."""

    code, title = "oauth_failed", "Connecting Gmail failed"


class InvalidState(OAuthFailed):
    code, title = "invalid_state", "The OAuth state is missing, tampered or not yours"


class StateExpired(OAuthFailed):
    code, title = "state_expired", "The OAuth state expired; start again"


class ConsentDenied(OAuthFailed):
    code, title = "access_denied", "Access to Gmail was not granted"


class MissingCode(OAuthFailed):
    code, title = "missing_code", "Google's answer carried no authorization code"


class CodeRejected(OAuthFailed):
    code, title = "code_rejected", "Google refused the authorization code (used or expired)"


class MissingScopes(OAuthFailed):
    code, title = "missing_scopes", "Not every Gmail permission was granted"


class InvalidGrant(Exception):
    """Google answered ``invalid_grant``: the refresh token is revoked or expired."""


class GoogleOAuthUnavailable(ServiceUnavailable):
    code, title = "google_oauth_unavailable", "Google's token service did not answer"


class GmailNotConfigured(ServiceUnavailable):
    code, title = "gmail_not_configured", "Gmail connection is not configured on this server"


@dataclass(frozen=True)
class StateClaims:
    user_id: uuid.UUID
    nonce: str
    mode: MailboxMode
    expires_at: datetime


@dataclass(frozen=True)
class TokenResponse:
    access_token: str
    expires_in: int
    scopes: list[str]
    refresh_token: str | None
    id_token: str | None


def _state_mac(key: str, body: str) -> str:
    mac = hmac.new(key.encode(), b"gmail-oauth-state:" + body.encode(), "sha256")
    return b64url_encode(mac.digest())


def sign_state(settings: Settings, claims: StateClaims) -> str:
    body = b64url_encode(
        json.dumps(
            {
                "u": str(claims.user_id),
                "n": claims.nonce,
                "m": claims.mode.value,
                "e": int(claims.expires_at.timestamp()),
            }
        ).encode()
    )
    return f"{body}.{_state_mac(settings.secret_key.get_secret_value(), body)}"


def read_state(settings: Settings, state: str | None) -> StateClaims:
    """The claims of a state we signed; raises when tampered or expired."""
    if not state or "." not in state:
        raise InvalidState("the state parameter is missing")
    body, mac = state.rsplit(".", 1)
    if not hmac.compare_digest(mac, _state_mac(settings.secret_key.get_secret_value(), body)):
        raise InvalidState("the state parameter was not issued by this server")
    try:
        data = json.loads(b64url_decode(body))
        claims = StateClaims(
            user_id=uuid.UUID(data["u"]),
            nonce=str(data["n"]),
            mode=MailboxMode(data["m"]),
            expires_at=datetime.fromtimestamp(int(data["e"]), tz=UTC),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidState("the state parameter is malformed") from exc
    if claims.expires_at <= utcnow():
        raise StateExpired("the connection attempt is older than 10 minutes; start again")
    return claims


def pkce_pair() -> tuple[str, str]:
    """(verifier, S256 challenge), RFC 7636."""
    verifier = secrets.token_urlsafe(64)
    return verifier, b64url_encode(hashlib.sha256(verifier.encode("ascii")).digest())


def state_cookie_value(*, nonce: str, verifier: str, user_id: uuid.UUID) -> str:
    return encrypt_secret(json.dumps({"n": nonce, "v": verifier, "u": str(user_id)}))


def read_state_cookie(value: str | None, claims: StateClaims) -> str:
    """The PKCE verifier, when the cookie belongs to this state and user."""
    if not value:
        raise InvalidState("the connection cookie is missing; start again from this browser")
    try:
        data = json.loads(decrypt_secret(value))
    except (SecretDecryptionFailed, ValueError) as exc:
        raise InvalidState("the connection cookie is not ours") from exc
    if not hmac.compare_digest(str(data.get("n")), claims.nonce) or data.get("u") != str(
        claims.user_id
    ):
        raise InvalidState("the state does not belong to this browser's connection attempt")
    return str(data["v"])


def redirect_uri(settings: Settings) -> str:
    return settings.gmail_redirect_url or f"{settings.base_url.rstrip('/')}/v1/gmail/callback"


def client_credentials(settings: Settings) -> tuple[str, str]:
    client_id = settings.gmail_client_id or next(iter(settings.google_client_ids), None)
    if not client_id or settings.gmail_client_secret is None:
        raise GmailNotConfigured(
            "set OUTREACH_GMAIL_CLIENT_ID (or OUTREACH_GOOGLE_CLIENT_IDS) and "
            "OUTREACH_GMAIL_CLIENT_SECRET to connect Gmail; the file outbox works without"
        )
    return client_id, settings.gmail_client_secret.get_secret_value()


def authorization_url(settings: Settings, *, state: str, challenge: str, mode: MailboxMode) -> str:
    client_id, _ = client_credentials(settings)
    query = {
        "client_id": client_id,
        "redirect_uri": redirect_uri(settings),
        "response_type": "code",
        "scope": " ".join(SCOPES[mode]),
        "access_type": "offline",
        "prompt": "consent",
        "include_granted_scopes": "true",
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    return f"{settings.google_auth_url}?{urlencode(query)}"


class GoogleOAuth:
    """Google's token and revocation endpoints."""

    def __init__(self, http: httpx.AsyncClient, settings: Settings) -> None:
        self.http = http
        self.settings = settings

    async def exchange_code(self, *, code: str, verifier: str) -> TokenResponse:
        client_id, secret = client_credentials(self.settings)
        try:
            return await self._token(
                {
                    "grant_type": "authorization_code",
                    "code": code,
                    "code_verifier": verifier,
                    "client_id": client_id,
                    "client_secret": secret,
                    "redirect_uri": redirect_uri(self.settings),
                }
            )
        except InvalidGrant as exc:
            raise CodeRejected("Google refused the code: it was used already or expired") from exc

    async def refresh(self, refresh_token: str) -> TokenResponse:
        """A new access token; raises :class:`InvalidGrant` when access was withdrawn."""
        client_id, secret = client_credentials(self.settings)
        return await self._token(
            {
                "grant_type": "refresh_token",
                "refresh_token": refresh_token,
                "client_id": client_id,
                "client_secret": secret,
            }
        )

    async def revoke(self, token: str) -> bool:
        """Revoke at Google; True when revoked, False when Google no longer knew it."""
        try:
            response = await self.http.post(self.settings.google_revoke_url, data={"token": token})
        except httpx.HTTPError as exc:
            raise GoogleOAuthUnavailable("Google's revocation endpoint did not answer") from exc
        if response.status_code >= 500:
            raise GoogleOAuthUnavailable(
                f"Google's revocation endpoint answered {response.status_code}"
            )
        return response.status_code == 200

    async def _token(self, form: dict[str, str]) -> TokenResponse:
        try:
            response = await self.http.post(self.settings.google_token_url, data=form)
        except httpx.HTTPError as exc:
            raise GoogleOAuthUnavailable("Google's token endpoint did not answer") from exc
        body: dict[str, Any] = _json(response)
        if response.status_code == 400 and body.get("error") == "invalid_grant":
            raise InvalidGrant(str(body.get("error_description", "invalid_grant")))
        if response.status_code != 200 or "access_token" not in body:
            raise GoogleOAuthUnavailable(
                f"Google's token endpoint answered {response.status_code} {body.get('error', '')}"
            )
        return TokenResponse(
            access_token=str(body["access_token"]),
            expires_in=int(body.get("expires_in", 3600)),
            scopes=str(body.get("scope", "")).split(),
            refresh_token=body.get("refresh_token"),
            id_token=body.get("id_token"),
        )


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}

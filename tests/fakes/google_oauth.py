"""Google's OAuth 2.0 endpoints for the fake Google (``tests/fakes/google.py``).

``/o/oauth2/v2/auth`` plays the consent screen: it validates the request (client,
redirect URI, PKCE S256, scopes) and redirects back with a code, consenting as
``consent_as(...)`` says (or denying). ``/token`` exchanges codes (single use,
PKCE checked, ID token signed with ``make_id_token``) and refresh tokens
(``invalid_grant`` once revoked); ``/revoke`` revokes a grant. The fake Gmail asks
``access_token_info`` who a bearer token belongs to and what it was granted.

PYTEST_DONT_REWRITE
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from outreach.kit.clock import utcnow

if TYPE_CHECKING:
    from tests.fakes.google import FakeGoogle

AUTH_PATH = "/o/oauth2/v2/auth"
TOKEN_PATH = "/token"
REVOKE_PATH = "/revoke"
FAKE_CLIENT_SECRET = "fake-client-secret"
ACCESS_TOKEN_SECONDS = 3599
# Google reports the short "email"/"profile" scopes as their userinfo URLs.
SCOPE_ALIASES = {
    "email": "https://www.googleapis.com/auth/userinfo.email",
    "profile": "https://www.googleapis.com/auth/userinfo.profile",
}


@dataclass
class Grant:
    email: str
    sub: str
    scopes: list[str]
    revoked: bool = False
    refresh_token: str = field(
        default_factory=lambda: "1//fake-refresh-" + secrets.token_urlsafe(24)
    )


@dataclass
class Consent:
    email: str = "asha.rao@gmail.com"
    sub: str = "110169484474386276334"
    scopes: list[str] | None = None  # None: everything requested
    deny: bool = False


class FakeGoogleOAuth:
    def __init__(self, google: FakeGoogle) -> None:
        self.google = google
        self.consent = Consent()
        self.codes: dict[str, dict[str, Any]] = {}
        self.grants: dict[str, Grant] = {}  # refresh token -> grant
        self.access_tokens: dict[str, tuple[Grant, float]] = {}  # token -> (grant, expires)
        self.refresh_calls = 0
        self.code_exchanges = 0
        self.revocations: list[str] = []
        self.token_delay = 0.0  # seconds the token endpoint waits (to widen races)
        self.token_status: int | None = None  # answer this status instead (e.g. 500)

    # -- test helpers -----------------------------------------------------------------

    def consent_as(
        self,
        *,
        email: str = "asha.rao@gmail.com",
        sub: str = "110169484474386276334",
        scopes: list[str] | None = None,
        deny: bool = False,
    ) -> None:
        """How the next consent screens answer (``scopes``: what the user leaves ticked)."""
        self.consent = Consent(email=email, sub=sub, scopes=scopes, deny=deny)

    def issue_grant(self, *, email: str, scopes: list[str], sub: str = "1234567890") -> Grant:
        """A grant as if the OAuth dance had happened (for tests that skip it)."""
        grant = Grant(email=email, sub=sub, scopes=[SCOPE_ALIASES.get(s, s) for s in scopes])
        self.grants[grant.refresh_token] = grant
        return grant

    def issue_access_token(self, grant: Grant, *, expires_in: int = ACCESS_TOKEN_SECONDS) -> str:
        token = "ya29.fake-" + secrets.token_urlsafe(24)
        self.access_tokens[token] = (grant, utcnow().timestamp() + expires_in)
        return token

    def revoke_user(self, email: str) -> None:
        """The user removes our app in their Google account: every grant and token dies."""
        for grant in self.grants.values():
            if grant.email == email:
                grant.revoked = True
        self.access_tokens = {
            t: (g, exp) for t, (g, exp) in self.access_tokens.items() if g.email != email
        }

    def expire_access_tokens(self) -> None:
        self.access_tokens = {t: (g, 0.0) for t, (g, _exp) in self.access_tokens.items()}

    def access_token_info(self, token: str) -> Grant | None:
        """The live grant behind a bearer token, or None (unknown, expired or revoked)."""
        found = self.access_tokens.get(token)
        if found is None:
            return None
        grant, expires = found
        if grant.revoked or expires <= utcnow().timestamp():
            return None
        return grant

    # -- the endpoints ------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        google = self.google  # reset() replaces google.oauth: always ask for the current one

        async def authorize(request: Request) -> Response:
            return await google.oauth.authorize(request)

        async def token(request: Request) -> Response:
            return await google.oauth.token(request)

        async def revoke(request: Request) -> Response:
            return await google.oauth.revoke(request)

        return [
            Route(AUTH_PATH, authorize, methods=["GET"]),
            Route(TOKEN_PATH, token, methods=["POST"]),
            Route(REVOKE_PATH, revoke, methods=["POST"]),
        ]

    async def authorize(self, request: Request) -> Response:
        from tests.fakes.google import FAKE_CLIENT_ID

        q = request.query_params
        problems = []
        if q.get("client_id") != FAKE_CLIENT_ID:
            problems.append("invalid_client")
        if q.get("response_type") != "code":
            problems.append("unsupported_response_type")
        if not q.get("redirect_uri") or not q.get("scope") or not q.get("state"):
            problems.append("missing redirect_uri, scope or state")
        if q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
            problems.append("PKCE S256 required by this fake")
        if problems:
            return PlainTextResponse("400. " + "; ".join(problems), status_code=400)
        redirect = q["redirect_uri"]
        if self.consent.deny:
            query = {"error": "access_denied", "state": q["state"]}
            return RedirectResponse(f"{redirect}?{urlencode(query)}", status_code=302)
        requested = q["scope"].split()
        granted = self.consent.scopes if self.consent.scopes is not None else requested
        code = "4/fake-code-" + secrets.token_urlsafe(16)
        self.codes[code] = {
            "client_id": q["client_id"],
            "redirect_uri": redirect,
            "challenge": q["code_challenge"],
            "scopes": [SCOPE_ALIASES.get(s, s) for s in granted],
            "email": self.consent.email,
            "sub": self.consent.sub,
            "used": False,
            "refresh_token": None,
        }
        query = {"code": code, "state": q["state"], "scope": " ".join(granted)}
        return RedirectResponse(f"{redirect}?{urlencode(query)}", status_code=302)

    @staticmethod
    def _error(error: str, description: str, status: int = 400) -> JSONResponse:
        return JSONResponse({"error": error, "error_description": description}, status_code=status)

    async def token(self, request: Request) -> Response:
        from tests.fakes.google import FAKE_CLIENT_ID

        if self.token_delay:
            await asyncio.sleep(self.token_delay)
        if self.token_status is not None:
            return self._error("internal_failure", "fake failure", self.token_status)
        form = await request.form()
        if (
            form.get("client_id") != FAKE_CLIENT_ID
            or form.get("client_secret") != FAKE_CLIENT_SECRET
        ):
            return self._error("invalid_client", "The OAuth client was not found.", 401)
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            return self._exchange(form)
        if grant_type == "refresh_token":
            return self._refresh(form)
        return self._error("unsupported_grant_type", f"Invalid grant_type: {grant_type}")

    def _exchange(self, form: Any) -> Response:
        self.code_exchanges += 1
        entry = self.codes.get(str(form.get("code")))
        if entry is None:
            return self._error("invalid_grant", "Malformed auth code.")
        if entry["used"]:
            # RFC 6749 4.1.2: a reused code is refused and what it issued is revoked.
            if entry["refresh_token"] in self.grants:
                self.grants[entry["refresh_token"]].revoked = True
            return self._error("invalid_grant", "Bad Request")
        if form.get("redirect_uri") != entry["redirect_uri"]:
            return self._error("redirect_uri_mismatch", "Bad Request")
        verifier = str(form.get("code_verifier") or "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        if challenge.rstrip(b"=").decode() != entry["challenge"]:
            return self._error("invalid_grant", "Invalid code verifier.")
        entry["used"] = True
        grant = Grant(email=entry["email"], sub=entry["sub"], scopes=entry["scopes"])
        self.grants[grant.refresh_token] = grant
        entry["refresh_token"] = grant.refresh_token
        body = self._token_body(grant)
        body["refresh_token"] = grant.refresh_token
        if "openid" in grant.scopes:
            body["id_token"] = self.google.make_id_token(
                email=grant.email, sub=grant.sub, aud=entry["client_id"]
            )
        return JSONResponse(body)

    def _refresh(self, form: Any) -> Response:
        self.refresh_calls += 1
        grant = self.grants.get(str(form.get("refresh_token")))
        if grant is None or grant.revoked:
            return self._error("invalid_grant", "Token has been expired or revoked.")
        return JSONResponse(self._token_body(grant))

    def _token_body(self, grant: Grant) -> dict[str, Any]:
        return {
            "access_token": self.issue_access_token(grant),
            "expires_in": ACCESS_TOKEN_SECONDS,
            "scope": " ".join(grant.scopes),
            "token_type": "Bearer",
        }

    async def revoke(self, request: Request) -> Response:
        form = await request.form()
        token = str(form.get("token") or request.query_params.get("token") or "")
        self.revocations.append(token)
        grant = self.grants.get(token)
        if grant is None and token in self.access_tokens:
            grant = self.access_tokens[token][0]
        if grant is None or grant.revoked:
            return JSONResponse(
                {"error": "invalid_token", "error_description": "Token expired or revoked"},
                status_code=400,
            )
        self.revoke_user(grant.email)
        return JSONResponse({})

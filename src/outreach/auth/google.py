"""Google ID token verification against Google's published keys (JWKS)."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
from jwt.algorithms import RSAAlgorithm

from outreach.kit.clock import utcnow
from outreach.kit.errors import ServiceUnavailable, Unauthorized

GOOGLE_ISSUERS = ("accounts.google.com", "https://accounts.google.com")
LEEWAY_SECONDS = 60
_MAX_AGE = re.compile(r"max-age=(\d+)")


class InvalidGoogleToken(Unauthorized):
    code, title = "invalid_google_token", "Invalid Google sign-in token"


class GoogleUnavailable(ServiceUnavailable):
    code, title = "google_unavailable", "Google sign-in keys could not be fetched"


@dataclass(frozen=True)
class GoogleIdentity:
    sub: str
    email: str
    name: str | None
    picture: str | None


class GoogleKeys:
    """Google's signing keys, cached for the ``max-age`` Google sends."""

    def __init__(self, jwks_url: str, client: httpx.AsyncClient) -> None:
        self.jwks_url = jwks_url
        self.client = client
        self._keys: dict[str, Any] = {}
        self._expires_at = 0.0
        self._lock = asyncio.Lock()

    async def _refresh(self) -> None:
        try:
            response = await self.client.get(self.jwks_url)
            response.raise_for_status()
            # A malformed JWKS is Google being unavailable, not a 500 of ours.
            self._keys = {
                key["kid"]: RSAAlgorithm.from_jwk(key)
                for key in response.json()["keys"]
                if key.get("kty") == "RSA"
            }
        except (httpx.HTTPError, ValueError, LookupError, TypeError, AttributeError) as exc:
            raise GoogleUnavailable("Google's signing keys could not be fetched") from exc
        except jwt.PyJWTError as exc:
            raise GoogleUnavailable("Google's signing keys could not be read") from exc
        match = _MAX_AGE.search(response.headers.get("cache-control", ""))
        self._expires_at = time.monotonic() + (int(match.group(1)) if match else 300)

    async def get(self, kid: str) -> Any:
        """The key ``kid``; refetched when the cache expired, and once more when unknown."""
        async with self._lock:
            if time.monotonic() >= self._expires_at:
                await self._refresh()
            elif kid not in self._keys:
                await self._refresh()  # Google rotated its keys before our cache expired
        if kid not in self._keys:
            raise InvalidGoogleToken("the token is signed with an unknown key")
        return self._keys[kid]


class GoogleTokenVerifier:
    def __init__(self, keys: GoogleKeys, client_ids: list[str]) -> None:
        self.keys = keys
        self.client_ids = client_ids

    async def verify(self, credential: str) -> GoogleIdentity:
        """Check signature, issuer, audience, expiry and a verified email."""
        try:
            header = jwt.get_unverified_header(credential)
        except jwt.PyJWTError as exc:
            raise InvalidGoogleToken("the credential is not a JWT") from exc
        if header.get("alg") != "RS256" or not isinstance(header.get("kid"), str):
            raise InvalidGoogleToken("the token must be RS256-signed with a key id")
        key = await self.keys.get(header["kid"])
        if not self.client_ids:
            raise InvalidGoogleToken("Google sign-in is not configured on this server")
        try:
            claims = jwt.decode(
                credential,
                key=key,
                algorithms=["RS256"],
                audience=self.client_ids,
                # Times are checked below against kit.clock: PyJWT would use the wall clock.
                options={
                    "require": ["iss", "aud", "exp", "iat", "sub"],
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.InvalidAudienceError as exc:
            raise InvalidGoogleToken("the token was issued for another application") from exc
        except jwt.PyJWTError as exc:
            raise InvalidGoogleToken(f"the token is invalid: {exc}") from exc
        if claims["iss"] not in GOOGLE_ISSUERS:
            raise InvalidGoogleToken("the token was not issued by Google")
        _check_times(claims)
        if claims.get("email_verified") is not True or not claims.get("email"):
            raise InvalidGoogleToken("the Google account's email address is not verified")
        return GoogleIdentity(
            sub=str(claims["sub"]),
            email=str(claims["email"]).lower(),
            name=claims.get("name"),
            picture=claims.get("picture"),
        )


def _check_times(claims: dict[str, Any]) -> None:
    """``exp``, ``iat`` and ``nbf`` against kit.clock, with a little leeway for skew."""
    now = utcnow().timestamp()
    if not isinstance(claims["exp"], int | float) or claims["exp"] + LEEWAY_SECONDS < now:
        raise InvalidGoogleToken("the token has expired")
    if not isinstance(claims["iat"], int | float) or claims["iat"] > now + LEEWAY_SECONDS:
        raise InvalidGoogleToken("the token was issued in the future")
    not_before = claims.get("nbf", now)
    if not isinstance(not_before, int | float) or not_before > now + LEEWAY_SECONDS:
        raise InvalidGoogleToken("the token is not valid yet")

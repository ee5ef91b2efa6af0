"""A fake Google for tests: the sign-in keys (JWKS) and ID tokens signed with them.

The app is served on 127.0.0.1 by ``FakeServer`` and code under test reaches it over
real HTTP; point ``google_jwks_url`` at ``fake_google.jwks_url``::

    async def test_sign_in(fake_google: FakeGoogle) -> None:
        token = fake_google.make_id_token(email="asha@example.com")
        ...
        assert fake_google.jwks_fetches == 1

Tokens carry ``FAKE_CLIENT_ID`` as their audience unless told otherwise, and their
``iat``/``exp`` follow ``outreach.kit.clock``, so a frozen clock moves them too.

More of Google (the OAuth ``/token`` and ``/revoke`` endpoints of the mailboxes
issue) goes into the same app: add the routes in ``FakeGoogle._routes``, their state
in ``FakeGoogle.reset``, and sign ID tokens with ``make_id_token``.

The app runs in the server's own thread: share plain data with it (ints, lists,
dicts), which is all the state here is.

PYTEST_DONT_REWRITE: this module is both imported by tests and loaded as a plugin;
it has no asserts, and the marker stops pytest warning about the import order.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from types import TracebackType
from typing import Any, Self

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from outreach.auth.google import GOOGLE_ISSUERS
from outreach.kit.clock import utcnow
from tests.fakes.server import FakeServer

CERTS_PATH = "/oauth2/v3/certs"
FAKE_CLIENT_ID = "fake-client-id.apps.googleusercontent.com"
FAKE_ISSUER = GOOGLE_ISSUERS[1]  # https://accounts.google.com
DEFAULT_JWKS_MAX_AGE = 3600
UNPUBLISHED_KID = "fake-google-unpublished"


@functools.cache
def _private_key(kid: str) -> rsa.RSAPrivateKey:
    """One 2048-bit key per kid for the whole session: generating them is slow."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass(frozen=True)
class SigningKey:
    """A test RSA key and the ``kid`` Google would publish it under."""

    kid: str
    private_key: rsa.RSAPrivateKey

    @classmethod
    def named(cls, kid: str) -> SigningKey:
        return cls(kid=kid, private_key=_private_key(kid))

    @property
    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def jwk(self) -> dict[str, str]:
        """The public half as Google publishes it in its JWKS."""
        public: dict[str, str] = json.loads(RSAAlgorithm.to_jwk(self.private_key.public_key()))
        return {
            "kid": self.kid,
            "kty": "RSA",
            "alg": "RS256",
            "use": "sig",
            "n": public["n"],
            "e": public["e"],
        }


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_json(value: Mapping[str, Any]) -> str:
    return _b64url(json.dumps(value, separators=(",", ":")).encode())


def _decode_segment(segment: str) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    )
    return decoded


class FakeGoogle:
    """Google's sign-in keys as an ASGI app on a local port, and a token minter."""

    def __init__(self, *, jwks_max_age: int = DEFAULT_JWKS_MAX_AGE) -> None:
        self.default_jwks_max_age = jwks_max_age
        self.app = Starlette(routes=self._routes())
        self.server = FakeServer(self.app)
        self.reset()

    def _routes(self) -> list[BaseRoute]:
        from tests.fakes.google_oauth import FakeGoogleOAuth

        # The OAuth endpoints (mailboxes): consent redirect, /token, /revoke.
        return [Route(CERTS_PATH, self._certs, methods=["GET"]), *FakeGoogleOAuth(self).routes()]

    def reset(self) -> None:
        """Back to one published key, default caching, no failures, zero counters."""
        self.keys: list[SigningKey] = [SigningKey.named("fake-google-key-1")]
        self._keys_made = 1
        self.jwks_max_age = self.default_jwks_max_age
        self.jwks_status = 200
        self.jwks_body: Any = None  # when set, served instead of the real JWKS
        self.jwks_fetches = 0
        from tests.fakes.google_oauth import FakeGoogleOAuth

        self.oauth = FakeGoogleOAuth(self)  # codes, grants and tokens of the OAuth endpoints

    # -- the server ---------------------------------------------------------------

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def jwks_url(self) -> str:
        return f"{self.server.url}{CERTS_PATH}"

    def __enter__(self) -> Self:
        self.server.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.server.stop()

    async def _certs(self, request: Request) -> Response:
        self.jwks_fetches += 1
        if self.jwks_status != 200:
            return JSONResponse({"error": "backend_error"}, status_code=self.jwks_status)
        body = self.jwks_body if self.jwks_body is not None else self.jwks()
        return JSONResponse(body, headers={"Cache-Control": f"public, max-age={self.jwks_max_age}"})

    # -- keys ---------------------------------------------------------------------

    @property
    def current_key(self) -> SigningKey:
        """The key new tokens are signed with: the most recently published one."""
        return self.keys[-1]

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return {"keys": [key.jwk() for key in self.keys]}

    def rotate_key(self, *, drop_old: bool = False) -> SigningKey:
        """Publish a new key (a new kid) and sign with it from now on."""
        self._keys_made += 1
        new_key = SigningKey.named(f"fake-google-key-{self._keys_made}")
        self.keys = [new_key] if drop_old else [*self.keys, new_key]
        return new_key

    # -- tokens -------------------------------------------------------------------

    def id_token_claims(
        self,
        *,
        sub: str = "110169484474386276334",
        email: str | None = "asha.rao@example.com",
        email_verified: bool | None = True,
        aud: str | list[str] = FAKE_CLIENT_ID,
        iss: str = FAKE_ISSUER,
        issued_in: timedelta = timedelta(0),
        expires_in: timedelta = timedelta(hours=1),
        name: str | None = "Asha Rao",
        picture: str | None = "https://lh3.googleusercontent.com/a/fake-photo",
        extra: Mapping[str, Any] | None = None,
        omit: Iterable[str] = (),
    ) -> dict[str, Any]:
        """Claims shaped like a Google Identity Services credential.

        ``iat`` is the clock's now plus ``issued_in`` and ``exp`` is now plus
        ``expires_in`` (negative for the past); ``None`` drops an optional claim,
        ``omit`` drops any claim, ``extra`` adds or overrides claims.
        """
        now = int(utcnow().timestamp())
        iat = now + int(issued_in.total_seconds())
        optional = {
            "email": email,
            "email_verified": email_verified,
            "name": name,
            "picture": picture,
        }
        claims: dict[str, Any] = {
            "iss": iss,
            "azp": aud if isinstance(aud, str) else aud[0],
            "aud": aud,
            "sub": sub,
            "nbf": iat,  # Google Identity Services credentials carry an nbf too
            "iat": iat,
            "exp": now + int(expires_in.total_seconds()),
            "jti": f"fake-jti-{sub}-{iat}",
            **{claim: value for claim, value in optional.items() if value is not None},
            **(extra or {}),
        }
        for claim in omit:
            claims.pop(claim, None)
        return claims

    def sign(
        self, claims: Mapping[str, Any], *, key: SigningKey | None = None, kid: str | None = None
    ) -> str:
        """RS256 with ``key`` (the current key by default), headed with ``kid`` (the key's)."""
        key = key or self.current_key
        headers = {"kid": kid or key.kid, "typ": "JWT"}
        return jwt.encode(dict(claims), key.private_key, algorithm="RS256", headers=headers)

    def make_id_token(
        self, *, key: SigningKey | None = None, kid: str | None = None, **claims: Any
    ) -> str:
        """A Google ID token; ``claims`` are the arguments of ``id_token_claims``."""
        return self.sign(self.id_token_claims(**claims), key=key, kid=kid)

    # -- tokens Google would never issue --------------------------------------------

    def make_unsigned_token(self, **claims: Any) -> str:
        """``alg: none`` with no signature, headed with a published kid."""
        header = {"alg": "none", "typ": "JWT", "kid": self.current_key.kid}
        return f"{_b64url_json(header)}.{_b64url_json(self.id_token_claims(**claims))}."

    def make_token_signed_with_public_key(self, **claims: Any) -> str:
        """Algorithm confusion: HS256 keyed with the published public key's PEM.

        PyJWT refuses to produce this itself, so it is assembled by hand.
        """
        header = {"alg": "HS256", "typ": "JWT", "kid": self.current_key.kid}
        signing_input = f"{_b64url_json(header)}.{_b64url_json(self.id_token_claims(**claims))}"
        mac = hmac.new(self.current_key.public_pem, signing_input.encode(), hashlib.sha256)
        return f"{signing_input}.{_b64url(mac.digest())}"

    def make_token_with_unknown_kid(self, **claims: Any) -> str:
        """Signed by a key Google never published, under a kid it never published."""
        return self.make_id_token(key=SigningKey.named(UNPUBLISHED_KID), **claims)

    @staticmethod
    def tamper(token: str, **changes: Any) -> str:
        """The token with some claims changed and the original signature kept."""
        header, payload, signature = token.split(".")
        claims = {**_decode_segment(payload), **changes}
        return f"{header}.{_b64url_json(claims)}.{signature}"


@pytest.fixture(scope="session")
def fake_google_server() -> Iterator[FakeGoogle]:
    """One fake Google per test session (per xdist worker); use ``fake_google``."""
    with FakeGoogle() as google:
        yield google


@pytest.fixture
def fake_google(fake_google_server: FakeGoogle) -> FakeGoogle:
    """The session's fake Google, reset: one key, no failures, zero counters."""
    fake_google_server.reset()
    return fake_google_server

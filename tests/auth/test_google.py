"""Google ID token verification against the fake Google, over real HTTP."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from outreach.auth import google as google_module
from outreach.auth.google import (
    GOOGLE_ISSUERS,
    LEEWAY_SECONDS,
    GoogleIdentity,
    GoogleKeys,
    GoogleTokenVerifier,
    GoogleUnavailable,
    InvalidGoogleToken,
)
from outreach.kit.clock import Clock
from tests.fakes.google import FAKE_CLIENT_ID, UNPUBLISHED_KID, FakeGoogle, SigningKey

# Until tests/conftest.py registers the fake for the whole suite.

OTHER_CLIENT_ID = "other-client-id.apps.googleusercontent.com"
LEEWAY = timedelta(seconds=LEEWAY_SECONDS)


class Monotonic:
    """A stand-in for ``time.monotonic`` in the verifier's module only."""

    def __init__(self) -> None:
        self.now = time.monotonic()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def monotonic(monkeypatch: pytest.MonkeyPatch) -> Monotonic:
    # Patch the module's name, not time.monotonic itself: the event loops use that.
    fake = Monotonic()
    monkeypatch.setattr(google_module, "time", SimpleNamespace(monotonic=fake))
    return fake


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(5.0)) as client:
        yield client


@pytest.fixture
def keys(fake_google: FakeGoogle, http: httpx.AsyncClient) -> GoogleKeys:
    return GoogleKeys(fake_google.jwks_url, http)


@pytest.fixture
def verifier(keys: GoogleKeys) -> GoogleTokenVerifier:
    return GoogleTokenVerifier(keys, [FAKE_CLIENT_ID])


def _refused_url() -> str:
    """A loopback URL nothing listens on: the port was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/oauth2/v3/certs"


async def _rejected(verifier: GoogleTokenVerifier, credential: str) -> InvalidGoogleToken:
    with pytest.raises(InvalidGoogleToken) as caught:
        await verifier.verify(credential)
    return caught.value


class TestVerifyValidToken:
    async def test_yields_the_identity_with_the_email_lower_cased(
        self, fake_google: FakeGoogle, verifier: GoogleTokenVerifier
    ) -> None:
        token = fake_google.make_id_token(
            sub="1234567890",
            email="Asha.Rao@Example.COM",
            name="Asha Rao",
            picture="https://lh3.googleusercontent.com/a/asha",
        )

        identity = await verifier.verify(token)

        assert identity == GoogleIdentity(
            sub="1234567890",
            email="asha.rao@example.com",
            name="Asha Rao",
            picture="https://lh3.googleusercontent.com/a/asha",
        )

    async def test_name_and_picture_are_optional(
        self, fake_google: FakeGoogle, verifier: GoogleTokenVerifier
    ) -> None:
        identity = await verifier.verify(fake_google.make_id_token(name=None, picture=None))

        assert (identity.name, identity.picture) == (None, None)

    async def test_any_of_several_configured_client_ids_is_accepted(
        self, fake_google: FakeGoogle, keys: GoogleKeys
    ) -> None:
        verifier = GoogleTokenVerifier(keys, [FAKE_CLIENT_ID, OTHER_CLIENT_ID])

        for audience in (FAKE_CLIENT_ID, OTHER_CLIENT_ID):
            identity = await verifier.verify(fake_google.make_id_token(aud=audience))
            assert identity.email == "asha.rao@example.com"

    @pytest.mark.parametrize("issuer", GOOGLE_ISSUERS)
    async def test_both_issuer_spellings_are_accepted(
        self, fake_google: FakeGoogle, verifier: GoogleTokenVerifier, issuer: str
    ) -> None:
        identity = await verifier.verify(fake_google.make_id_token(iss=issuer))

        assert identity.sub == "110169484474386276334"


class TestVerifyTimes:
    async def test_expired_beyond_the_leeway_is_rejected(
        self, fake_google: FakeGoogle, verifier: GoogleTokenVerifier, frozen_clock: Clock
    ) -> None:
        token = fake_google.make_id_token(
            issued_in=-timedelta(hours=2), expires_in=-LEEWAY - timedelta(seconds=1)
        )

        error = await _rejected(verifier, token)

        assert "expired" in str(error)

    async def test_expired_within_the_leeway_is_accepted(
        self, fake_google: FakeGoogle, verifier: GoogleTokenVerifier, frozen_clock: Clock
    ) -> None:
        token = fake_google.make_id_token(
            issued_in=-timedelta(hours=1), expires_in=-LEEWAY + timedelta(seconds=5)
        )

        assert await verifier.verify(token)

    async def test_expiry_follows_the_app_clock(
        self, fake_google: FakeGoogle, verifier: GoogleTokenVerifier, frozen_clock: Clock
    ) -> None:
        token = fake_google.make_id_token(expires_in=timedelta(hours=1))
        assert await verifier.verify(token)

        frozen_clock.advance(timedelta(hours=1) + LEEWAY + timedelta(seconds=1))

        await _rejected(verifier, token)

    async def test_issued_in_the_future_beyond_the_leeway_is_rejected(
        self, fake_google: FakeGoogle, verifier: GoogleTokenVerifier, frozen_clock: Clock
    ) -> None:
        token = fake_google.make_id_token(
            issued_in=LEEWAY + timedelta(seconds=1), expires_in=timedelta(hours=2), omit=["nbf"]
        )

        error = await _rejected(verifier, token)

        assert "future" in str(error)

    async def test_issued_in_the_future_within_the_leeway_is_accepted(
        self, fake_google: FakeGoogle, verifier: GoogleTokenVerifier, frozen_clock: Clock
    ) -> None:
        token = fake_google.make_id_token(issued_in=LEEWAY - timedelta(seconds=5))

        assert await verifier.verify(token)

    async def test_not_before_beyond_the_leeway_is_rejected(
        self, fake_google: FakeGoogle, verifier: GoogleTokenVerifier, frozen_clock: Clock
    ) -> None:
        not_before = frozen_clock.now() + LEEWAY + timedelta(seconds=1)
        token = fake_google.make_id_token(extra={"nbf": int(not_before.timestamp())})

        await _rejected(verifier, token)

    async def test_not_before_is_checked_against_the_app_clock(
        self, fake_google: FakeGoogle, verifier: GoogleTokenVerifier, frozen_clock: Clock
    ) -> None:
        # A day ahead of the wall clock, a fresh token's nbf is in the wall clock's future.
        frozen_clock.freeze(datetime.now(UTC) + timedelta(days=1))

        assert await verifier.verify(fake_google.make_id_token())


class TestVerifyClaims:
    async def test_wrong_audience_is_rejected(
        self, fake_google: FakeGoogle, verifier: GoogleTokenVerifier
    ) -> None:
        error = await _rejected(verifier, fake_google.make_id_token(aud=OTHER_CLIENT_ID))

        assert "another application" in str(error)

    async def test_no_configured_client_id_rejects_every_token(
        self, fake_google: FakeGoogle, keys: GoogleKeys
    ) -> None:
        await _rejected(GoogleTokenVerifier(keys, []), fake_google.make_id_token())

    @pytest.mark.parametrize(
        "issuer", ["https://evil.example.com", "http://accounts.google.com", "google.com"]
    )
    async def test_wrong_issuer_is_rejected(
        self, fake_google: FakeGoogle, verifier: GoogleTokenVerifier, issuer: str
    ) -> None:
        error = await _rejected(verifier, fake_google.make_id_token(iss=issuer))

        assert "not issued by Google" in str(error)

    @pytest.mark.parametrize(
        "claims",
        [
            {"email_verified": False},
            {"email_verified": None},
            {"extra": {"email_verified": "true"}},
        ],
        ids=["false", "missing", "a-string"],
    )
    async def test_email_not_verified_is_rejected(
        self, fake_google: FakeGoogle, verifier: GoogleTokenVerifier, claims: dict[str, Any]
    ) -> None:
        error = await _rejected(verifier, fake_google.make_id_token(**claims))

        assert "not verified" in str(error)

    async def test_missing_email_is_rejected(
        self, fake_google: FakeGoogle, verifier: GoogleTokenVerifier
    ) -> None:
        await _rejected(verifier, fake_google.make_id_token(email=None))

    @pytest.mark.parametrize("claim", ["sub", "exp", "iat", "aud", "iss"])
    async def test_missing_required_claim_is_rejected(
        self, fake_google: FakeGoogle, verifier: GoogleTokenVerifier, claim: str
    ) -> None:
        await _rejected(verifier, fake_google.make_id_token(omit=[claim]))


class TestVerifyForgeries:
    async def test_unsigned_alg_none_token_is_rejected_without_fetching_keys(
        self, fake_google: FakeGoogle, verifier: GoogleTokenVerifier
    ) -> None:
        await _rejected(verifier, fake_google.make_unsigned_token())

        assert fake_google.jwks_fetches == 0

    async def test_hs256_keyed_with_the_public_key_is_rejected(
        self, fake_google: FakeGoogle, verifier: GoogleTokenVerifier
    ) -> None:
        await _rejected(verifier, fake_google.make_token_signed_with_public_key())

    async def test_tampered_payload_is_rejected(
        self, fake_google: FakeGoogle, verifier: GoogleTokenVerifier
    ) -> None:
        token = fake_google.make_id_token(email="asha.rao@example.com")
        assert await verifier.verify(token)

        forged = fake_google.tamper(token, email="ceo@example.com")

        await _rejected(verifier, forged)

    async def test_unpublished_key_under_a_published_kid_is_rejected(
        self, fake_google: FakeGoogle, verifier: GoogleTokenVerifier
    ) -> None:
        stranger = SigningKey.named(UNPUBLISHED_KID)
        token = fake_google.make_id_token(key=stranger, kid=fake_google.current_key.kid)

        await _rejected(verifier, token)

    @pytest.mark.parametrize("credential", ["abc", "", "a.b.c", "....", "eyJhbGciOiJSUzI1NiJ9"])
    async def test_garbage_credential_is_rejected(
        self, verifier: GoogleTokenVerifier, credential: str
    ) -> None:
        await _rejected(verifier, credential)

    def test_rejection_is_a_401_problem(self) -> None:
        error = InvalidGoogleToken("the token has expired")

        problem = error.to_problem(instance="/v1/auth/google", request_id=None)

        assert (problem.status, problem.code) == (401, "invalid_google_token")


class TestVerifyKeyIds:
    async def test_unknown_kid_is_rejected_after_exactly_one_refetch(
        self, fake_google: FakeGoogle, verifier: GoogleTokenVerifier
    ) -> None:
        await verifier.verify(fake_google.make_id_token())
        assert fake_google.jwks_fetches == 1

        error = await _rejected(verifier, fake_google.make_token_with_unknown_kid())

        assert "unknown key" in str(error)
        assert fake_google.jwks_fetches == 2

    async def test_unknown_kid_on_a_cold_cache_fetches_once(
        self, fake_google: FakeGoogle, verifier: GoogleTokenVerifier
    ) -> None:
        await _rejected(verifier, fake_google.make_token_with_unknown_kid())

        assert fake_google.jwks_fetches == 1

    async def test_rotated_key_is_accepted_after_one_refetch(
        self, fake_google: FakeGoogle, verifier: GoogleTokenVerifier
    ) -> None:
        await verifier.verify(fake_google.make_id_token())
        new_key = fake_google.rotate_key(drop_old=True)

        token = fake_google.make_id_token(sub="after-rotation")
        identity = await verifier.verify(token)
        await verifier.verify(token)

        assert identity.sub == "after-rotation"
        assert fake_google.current_key == new_key
        assert fake_google.jwks_fetches == 2

    async def test_tokens_of_the_old_key_stay_valid_while_it_is_published(
        self, fake_google: FakeGoogle, verifier: GoogleTokenVerifier
    ) -> None:
        old_token = fake_google.make_id_token()
        fake_google.rotate_key()

        assert await verifier.verify(old_token)
        assert await verifier.verify(fake_google.make_id_token())
        assert fake_google.jwks_fetches == 1


class TestGoogleKeysCaching:
    async def test_keys_are_fetched_once_within_max_age(
        self, fake_google: FakeGoogle, verifier: GoogleTokenVerifier, monotonic: Monotonic
    ) -> None:
        fake_google.jwks_max_age = 600

        for _ in range(5):
            await verifier.verify(fake_google.make_id_token())
            monotonic.advance(100)

        assert fake_google.jwks_fetches == 1

    async def test_keys_are_refetched_once_max_age_elapses(
        self, fake_google: FakeGoogle, verifier: GoogleTokenVerifier, monotonic: Monotonic
    ) -> None:
        fake_google.jwks_max_age = 600
        await verifier.verify(fake_google.make_id_token())

        monotonic.advance(599)
        await verifier.verify(fake_google.make_id_token())
        assert fake_google.jwks_fetches == 1

        monotonic.advance(2)
        await verifier.verify(fake_google.make_id_token())
        await verifier.verify(fake_google.make_id_token())
        assert fake_google.jwks_fetches == 2

    async def test_a_dropped_key_is_forgotten_after_max_age(
        self, fake_google: FakeGoogle, verifier: GoogleTokenVerifier, monotonic: Monotonic
    ) -> None:
        old_token = fake_google.make_id_token()
        await verifier.verify(old_token)
        fake_google.rotate_key(drop_old=True)

        monotonic.advance(fake_google.jwks_max_age + 1)

        await _rejected(verifier, old_token)

    async def test_get_returns_the_published_key(
        self, fake_google: FakeGoogle, keys: GoogleKeys
    ) -> None:
        key = await keys.get(fake_google.current_key.kid)

        assert (
            key.public_numbers()
            == fake_google.current_key.private_key.public_key().public_numbers()
        )


class TestGoogleKeysUnavailable:
    @pytest.mark.parametrize("status", [500, 503, 404])
    async def test_jwks_error_status_is_unavailable(
        self, fake_google: FakeGoogle, verifier: GoogleTokenVerifier, status: int
    ) -> None:
        fake_google.jwks_status = status

        with pytest.raises(GoogleUnavailable) as caught:
            await verifier.verify(fake_google.make_id_token())

        assert caught.value.status == 503

    async def test_connection_refused_is_unavailable(
        self, fake_google: FakeGoogle, http: httpx.AsyncClient
    ) -> None:
        verifier = GoogleTokenVerifier(GoogleKeys(_refused_url(), http), [FAKE_CLIENT_ID])

        with pytest.raises(GoogleUnavailable):
            await verifier.verify(fake_google.make_id_token())

    @pytest.mark.parametrize(
        "body",
        [
            {"nope": []},
            [],
            {"keys": "nope"},
            {"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}]},
            {"keys": [{"kid": "k", "kty": "RSA", "n": "@@", "e": "AQAB"}]},
        ],
        ids=["no-keys", "a-list", "keys-not-a-list", "key-without-kid", "bad-modulus"],
    )
    async def test_malformed_jwks_is_unavailable(
        self, fake_google: FakeGoogle, verifier: GoogleTokenVerifier, body: Any
    ) -> None:
        fake_google.jwks_body = body

        with pytest.raises(GoogleUnavailable):
            await verifier.verify(fake_google.make_id_token())

    async def test_google_recovering_serves_tokens_again(
        self, fake_google: FakeGoogle, verifier: GoogleTokenVerifier
    ) -> None:
        fake_google.jwks_status = 500
        with pytest.raises(GoogleUnavailable):
            await verifier.verify(fake_google.make_id_token())

        fake_google.jwks_status = 200

        assert await verifier.verify(fake_google.make_id_token())

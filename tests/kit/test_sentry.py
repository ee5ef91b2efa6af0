"""Sentry: reports reach a fake Sentry on 127.0.0.1 through the real SDK transport,
from an unhandled request error and from a failing job, tagged and scrubbed of
tokens, cookies, authorization headers and email addresses."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import sentry_sdk
from fastapi import FastAPI
from pydantic import SecretStr

from outreach.config import Settings
from outreach.kit import jobs
from outreach.kit.db import Database
from outreach.kit.jobs import job
from outreach.kit.sentry import close_sentry, init_sentry, scrub_event, scrub_text
from tests.conftest import make_client, sign_in, wait_for_jobs
from tests.fakes.sentry import FakeSentry, parse_envelope
from tests.payment.conftest import started_app

FAILS_ONCE_AND_FOR_ALL = "test.kit_sentry.fails"
FAILS_TWICE = "test.kit_sentry.fails_twice"

# Secrets a request or a job carries; none may reach Sentry.
BEARER = "header-bearer-secret-0123456789"
QUERY_TOKEN = "query-token-secret-0123456789"
CSRF = "csrf-header-secret-0123456789"
LOCAL_TOKEN = "ya29.local-access-token-secret"
ADDRESS = "ada.lovelace@example.com"
JOB_ADDRESS = "grace.hopper@example.org"


@job(FAILS_ONCE_AND_FOR_ALL, max_attempts=1)
async def fails(recipient: str) -> None:
    api_token = "job-local-token-secret-0123"  # a frame variable Sentry would show
    raise ValueError(f"could not write to {recipient} (Authorization: Bearer {api_token})")


@job(FAILS_TWICE, max_attempts=2)
async def fails_twice() -> None:
    raise ValueError("still broken")


async def boom(thing_id: str) -> None:
    access_token = LOCAL_TOKEN  # a frame variable Sentry would show
    raise RuntimeError(f"cannot reach {ADDRESS} for {thing_id} with token={access_token}")


@pytest.fixture
def fake_sentry() -> Iterator[FakeSentry]:
    with FakeSentry() as fake:
        yield fake


@pytest.fixture
async def reporting_app(
    settings: Settings, database: Database, fake_sentry: FakeSentry
) -> AsyncIterator[FastAPI]:
    """The app with Sentry on (DSN at the fake) and a route that fails unexpectedly."""
    reporting = settings.model_copy(update={"sentry_dsn": SecretStr(fake_sentry.dsn)})
    try:
        async for app in started_app(reporting, database, settings):
            app.add_api_route("/v1/test-only/boom/{thing_id}", boom, methods=["GET"])
            yield app
    finally:
        close_sentry()  # later tests run without Sentry


async def delivered(fake: FakeSentry, count: int) -> list[dict[str, Any]]:
    """The events the fake received once the SDK's queue is sent."""
    await asyncio.to_thread(sentry_sdk.flush, 5)
    events = fake.events()
    assert len(events) == count, (events, fake.rejected)
    return events


def leaked(raw: bytes, *secrets: str) -> list[str]:
    return [secret for secret in secrets if secret.encode() in raw]


class TestRequestErrors:
    async def test_unhandled_error_arrives_scrubbed(
        self, reporting_app: FastAPI, fake_sentry: FakeSentry
    ) -> None:
        async with make_client(reporting_app) as client:
            await sign_in(client, "reporter@example.com")
            session_cookie = client.cookies["outreach_session"]
            response = await client.get(
                "/v1/test-only/boom/42",
                params={"token": QUERY_TOKEN, "email": ADDRESS, "page": "2"},
                headers={"Authorization": f"Bearer {BEARER}", "X-CSRF-Token": CSRF},
            )
        assert response.status_code == 500
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "internal_error"

        [event] = await delivered(fake_sentry, 1)
        [exception] = event["exception"]["values"]
        assert exception["type"] == "RuntimeError"
        assert exception["value"] == "cannot reach [email] for 42 with token=[Filtered]"
        assert event["tags"]["request_id"] == response.headers["x-request-id"]
        assert event["tags"]["component"] == "api"
        assert event["environment"] == "testing"
        request = event["request"]
        assert request["url"].endswith("/v1/test-only/boom/42")
        assert request["headers"]["authorization"] == "[Filtered]"
        assert request["headers"]["x-csrf-token"] == "[Filtered]"
        assert "cookie" not in request["headers"] or request["headers"]["cookie"] == "[Filtered]"
        assert "cookies" not in request
        assert "page=2" in request["query_string"]
        frame = exception["stacktrace"]["frames"][-1]
        assert frame["function"] == "boom"
        assert frame["vars"]["access_token"] == "[Filtered]"
        assert frame["vars"]["thing_id"] == "'42'"
        raw = fake_sentry.raw()
        assert not leaked(raw, ADDRESS, BEARER, QUERY_TOKEN, CSRF, LOCAL_TOKEN, session_cookie)
        assert not leaked(raw, "ada.lovelace%40example.com", "reporter@example.com")

    async def test_handled_errors_are_not_reported(
        self, reporting_app: FastAPI, fake_sentry: FakeSentry
    ) -> None:
        async with make_client(reporting_app) as client:
            assert (await client.get("/v1/auth/me")).status_code == 401
            assert (await client.get("/no/such/page")).status_code == 404
        await delivered(fake_sentry, 0)
        assert fake_sentry.rejected == []


class TestJobErrors:
    async def test_failing_job_arrives_with_task_and_job_id(
        self, reporting_app: FastAPI, fake_sentry: FakeSentry
    ) -> None:
        job_id = await jobs.enqueue(FAILS_ONCE_AND_FOR_ALL, recipient=JOB_ADDRESS)
        await wait_for_jobs()

        [event] = await delivered(fake_sentry, 1)
        assert event["tags"]["task"] == FAILS_ONCE_AND_FOR_ALL
        assert event["tags"]["job_id"] == job_id
        assert (event["tags"]["attempt"], event["tags"]["final_attempt"]) == ("1", "yes")
        assert event["level"] == "error"
        assert event["transaction"] == FAILS_ONCE_AND_FOR_ALL
        [exception] = event["exception"]["values"]
        assert exception["type"] == "ValueError"
        assert exception["value"] == "could not write to [email] (Authorization: Bearer [Filtered])"
        raw = fake_sentry.raw()
        assert not leaked(raw, JOB_ADDRESS, "job-local-token-secret-0123")

    async def test_each_failed_attempt_is_reported_the_last_as_an_error(
        self, reporting_app: FastAPI, fake_sentry: FakeSentry
    ) -> None:
        job_id = await jobs.enqueue(FAILS_TWICE)
        await wait_for_jobs()

        events = await delivered(fake_sentry, 2)
        reports = sorted(
            (e["tags"]["attempt"], e["tags"]["final_attempt"], e["level"]) for e in events
        )
        assert reports == [("1", "no", "warning"), ("2", "yes", "error")]
        assert {e["tags"]["job_id"] for e in events} == {job_id}


class TestInit:
    def test_nothing_starts_without_a_dsn(self, settings: Settings) -> None:
        assert settings.sentry_dsn is None
        assert init_sentry(settings, component="api") is False
        assert not sentry_sdk.get_client().is_active()

    async def test_app_without_a_dsn_reports_nothing(
        self, settings: Settings, database: Database, fake_sentry: FakeSentry
    ) -> None:
        async for app in started_app(settings, database, settings):
            app.add_api_route("/v1/test-only/boom/{thing_id}", boom, methods=["GET"])
            async with make_client(app) as client:
                assert (await client.get("/v1/test-only/boom/1")).status_code == 500
        assert not sentry_sdk.get_client().is_active()
        assert fake_sentry.raw() == b""

    def test_close_stops_reporting(self, settings: Settings, fake_sentry: FakeSentry) -> None:
        reporting = settings.model_copy(update={"sentry_dsn": SecretStr(fake_sentry.dsn)})
        try:
            assert init_sentry(reporting, component="worker") is True
            assert sentry_sdk.get_client().is_active()
        finally:
            close_sentry()
        assert not sentry_sdk.get_client().is_active()


class TestScrubber:
    def test_event_loses_secrets_and_addresses_wherever_they_sit(self) -> None:
        event: Any = {
            "event_id": "0123456789abcdef0123456789abcdef",
            "message": f"mail to {ADDRESS} failed",
            "user": {"id": "u-1", "email": ADDRESS, "ip_address": "203.0.113.9"},
            "request": {
                "url": "https://api.example.com/u/eyJzIjoiYWJjIiwiZSI6ImFkYUBleGFtcGxlLmNvbSJ9.sig",
                "query_string": f"code=4%2F0Adeu&state=signed-state&page=3&email={ADDRESS}",
                "headers": {
                    "Authorization": f"Bearer {BEARER}",
                    "Cookie": "outreach_session=abc",
                    "X-Razorpay-Signature": "deadbeef",
                    "Idempotency-Key": "order-1",
                },
                "cookies": {"outreach_session": "abc"},
                "data": {"email": ADDRESS},
            },
            "breadcrumbs": {
                "values": [
                    {"message": f"GET https://g.example/x?access_token={QUERY_TOKEN}"},
                    {"data": {"headers": [["authorization", f"Basic {BEARER}"]]}},
                ]
            },
            "extra": {"refresh_token": "1//refresh", "razorpay_key_secret": "rzp", "count": 3},
            "contexts": {"trace": {"trace_id": "a" * 32, "span_id": "b" * 16}},
        }
        scrubbed: Any = scrub_event(event)
        text = repr(scrubbed)
        assert not leaked(text.encode(), ADDRESS, BEARER, QUERY_TOKEN, "1//refresh", "rzp")
        assert "abc" not in str(scrubbed["request"].get("headers"))
        assert scrubbed["user"] == {"id": "u-1"}
        assert "cookies" not in scrubbed["request"]
        assert "data" not in scrubbed["request"]
        assert scrubbed["request"]["url"] == "https://api.example.com/u/[Filtered]"
        query = scrubbed["request"]["query_string"]
        assert query == "code=[Filtered]&state=[Filtered]&page=3&email=[email]"
        headers = scrubbed["request"]["headers"]
        assert headers["Authorization"] == headers["Cookie"] == "[Filtered]"
        assert headers["X-Razorpay-Signature"] == "[Filtered]"
        assert headers["Idempotency-Key"] == "order-1"
        assert scrubbed["extra"]["count"] == 3
        assert scrubbed["breadcrumbs"]["values"][1]["data"]["headers"] == [
            ["authorization", "[Filtered]"]
        ]
        assert scrubbed["event_id"] == event["event_id"]
        assert scrubbed["contexts"]["trace"] == {"trace_id": "a" * 32, "span_id": "b" * 16}

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("to Ravi.K+jobs@mail.acme.co.in now", "to [email] now"),
            ("Authorization: Bearer abc.def-ghi", "Authorization: Bearer [Filtered]"),
            (
                "/v1/gmail/callback?state=s1&code=c2",
                "/v1/gmail/callback?state=[Filtered]&code=[Filtered]",
            ),
            ("id_token=eyJ.x.y&next=/", "id_token=[Filtered]&next=/"),
            ("campaign 5f0c/emails?limit=50", "campaign 5f0c/emails?limit=50"),
        ],
    )
    def test_text(self, text: str, expected: str) -> None:
        assert scrub_text(text) == expected


class TestFakeSentry:
    def test_envelope_items_with_and_without_length(self) -> None:
        body = (
            b'{"event_id":"e1"}\n'
            b'{"type":"event","length":13}\n{"level":"x"}\n'
            b'{"type":"attachment"}\nplain line\n'
        )
        envelope = parse_envelope(body)
        assert envelope.headers == {"event_id": "e1"}
        assert [(i.type, i.payload) for i in envelope.items] == [
            ("event", b'{"level":"x"}'),
            ("attachment", b"plain line"),
        ]

    async def test_refuses_a_wrong_key(self, fake_sentry: FakeSentry) -> None:
        async with httpx.AsyncClient() as client:
            response = await client.post(
                f"{fake_sentry.server.url}/api/42/envelope/",
                content=b'{}\n{"type":"event"}\n{}\n',
                headers={"X-Sentry-Auth": "Sentry sentry_key=nope, sentry_version=7"},
            )
        assert response.status_code == 401
        assert fake_sentry.events() == []

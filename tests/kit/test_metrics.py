"""GET /metrics after real requests: HTTP by route template, jobs, emails from a
real campaign sent through the outbox, credits by reason, payments by status,
the sending lag; the bearer token; multiprocess mode; the worker's own port.

Metrics are process-global and other tests move them too: every check is a
difference between two scrapes (or a gauge read at a moment the test controls).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from taskiq.kicker import AsyncKicker

from outreach.config import Settings, use_settings
from outreach.credits.service import credit_service
from outreach.kit import jobs
from outreach.kit.clock import Clock
from outreach.kit.db import Database
from outreach.kit.jobs import job
from outreach.kit.metrics import MULTIPROC_DIR_VARIABLE, start_metrics_server
from outreach.models import User
from outreach.models.campaign import EmailStatus, ScheduledEmail
from tests.campaign.conftest import make_list, make_outbox_mailbox, make_template
from tests.conftest import create_user, make_client, sign_in, wait_for_jobs
from tests.fakes.razorpay import FakeRazorpay
from tests.payment.conftest import create_order, deliver, started_app, with_razorpay

MONDAY_0830_IST = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
ALWAYS_FAILS = "test.kit_metrics.always_fails"
# A bound, not a timing: a loaded 2-core machine can take long to start a process.
PROCESS_START_BOUND_SECONDS = 300


@job(ALWAYS_FAILS, max_attempts=2)
async def always_fails() -> None:
    raise RuntimeError("this job always fails")


Labels = frozenset[tuple[str, str]]


@dataclass
class Figures:
    """One scrape: every sample by name and labels."""

    samples: dict[tuple[str, Labels], float]
    text: str

    @classmethod
    def parse(cls, text: str) -> Figures:
        from prometheus_client.parser import text_string_to_metric_families

        samples = {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }
        return cls(samples, text)

    def value(self, name: str, **labels: str) -> float:
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def labels_of(self, name: str) -> list[dict[str, str]]:
        return [dict(labels) for (sample, labels) in self.samples if sample == name]


def moved(before: Figures, after: Figures, name: str, **labels: str) -> float:
    return after.value(name, **labels) - before.value(name, **labels)


async def scrape(client: httpx.AsyncClient, base_url: str = "", **headers: str) -> Figures:
    response = await client.get(f"{base_url}/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return Figures.parse(response.text)


class TestHttp:
    async def test_requests_are_counted_by_route_template_not_raw_path(
        self, client: httpx.AsyncClient
    ) -> None:
        await sign_in(client, "metrics-http@example.com")
        before = await scrape(client)
        campaign_id = str(uuid.uuid4())
        assert (await client.get(f"/v1/campaigns/{campaign_id}")).status_code == 404
        assert (await client.get(f"/v1/campaigns/{campaign_id}")).status_code == 404
        assert (await client.get(f"/no/such/page/{campaign_id}")).status_code == 404
        assert (await client.get("/health")).status_code == 200
        assert (await client.request("BREW", "/health")).status_code == 405
        after = await scrape(client)

        requests = "outreach_http_requests_total"
        route = "/v1/campaigns/{campaign_id}"
        assert moved(before, after, requests, method="GET", route=route, status="404") == 2
        assert moved(before, after, requests, method="GET", route="unmatched", status="404") == 1
        assert moved(before, after, requests, method="GET", route="/health", status="200") == 1
        assert moved(before, after, requests, method="other", route="/health", status="405") == 1
        # The scrape before this one is counted too, under its own template.
        assert moved(before, after, requests, method="GET", route="/metrics", status="200") == 1
        count = "outreach_http_request_duration_seconds_count"
        assert moved(before, after, count, method="GET", route=route) == 2
        assert after.value("outreach_http_request_duration_seconds_sum", method="GET", route=route)
        # The scrape itself is the one request in flight while it is rendered.
        assert after.value("outreach_http_requests_in_flight") == 1
        assert campaign_id not in after.text
        assert "/no/such/page" not in after.text

    async def test_metrics_needs_no_session_and_is_not_in_the_schema(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.get("/metrics")
        assert response.status_code == 200
        assert "# TYPE outreach_http_requests_total counter" in response.text
        schema = (await client.get("/openapi.json")).json()
        assert "/metrics" not in schema["paths"]


class TestBearerToken:
    @pytest.fixture
    async def guarded(self, settings: Settings, database: Database) -> AsyncIterator[FastAPI]:
        guarded = settings.model_copy(update={"metrics_token": SecretStr("scrape-me-0123456789")})
        async for app in started_app(guarded, database, settings):
            yield app

    @pytest.mark.parametrize(
        "authorization",
        [None, "Bearer wrong-token", "Basic c2NyYXBlLW1lLTAxMjM0NTY3ODk=", "scrape-me-0123456789"],
    )
    async def test_without_the_token_it_is_401_problem(
        self, guarded: FastAPI, authorization: str | None
    ) -> None:
        headers = {"Authorization": authorization} if authorization else {}
        async with make_client(guarded) as client:
            response = await client.get("/metrics", headers=headers)
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "metrics_token_required"
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert "outreach_http_requests_total" not in response.text

    async def test_with_the_token_it_answers(self, guarded: FastAPI) -> None:
        async with make_client(guarded) as client:
            figures = await scrape(client, Authorization="Bearer scrape-me-0123456789")
        assert figures.labels_of("outreach_http_requests_total")


class TestJobs:
    async def test_runs_failures_and_given_up_jobs_by_task(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        before = await scrape(client)
        await jobs.enqueue(ALWAYS_FAILS)
        await wait_for_jobs()
        after = await scrape(client)

        task = {"task": ALWAYS_FAILS}
        assert moved(before, after, "outreach_jobs_sent_total", **task) == 2  # with its retry
        assert moved(before, after, "outreach_jobs_run_total", **task) == 2
        assert moved(before, after, "outreach_jobs_failed_total", **task) == 2
        assert moved(before, after, "outreach_jobs_given_up_total", **task) == 1
        assert moved(before, after, "outreach_job_duration_seconds_count", **task) == 2


class TestProductFigures:
    """A campaign sent through the file outbox, and a purchase, all over HTTP."""

    @pytest.fixture
    def fake_razorpay(self) -> Iterator[FakeRazorpay]:
        with FakeRazorpay() as fake:
            yield fake

    @pytest.fixture
    async def product_app(
        self, settings: Settings, database: Database, tmp_path: Path, fake_razorpay: FakeRazorpay
    ) -> AsyncIterator[FastAPI]:
        changed = with_razorpay(
            settings,
            fake_razorpay,
            outbox_path=tmp_path / "outbox",
            allow_outbox_mailboxes=True,
        )
        async for app in started_app(changed, database, settings):
            yield app

    async def _scheduled_campaign(
        self, client: httpx.AsyncClient, session: AsyncSession, *, campaign_cap: int | None = 2
    ) -> dict[str, Any]:
        """Four emails (a campaign cap of 2 a day), all made due at 08:30..08:33 IST."""
        me = await sign_in(client, "metrics-sender@example.com", "Asha Rao")
        user = await session.get(User, uuid.UUID(me["id"]))
        assert user is not None
        mailbox = await make_outbox_mailbox(session, user)
        people = ["ravi@acme.com", "meera@globex.com", "kiran@initech.com", "uma@hooli.com"]
        recipients = await make_list(
            session, user, [{"email": e, "first_name": "X", "company": "Co"} for e in people]
        )
        template_id = await make_template(session, user)
        await session.flush()
        created = await client.post(
            "/v1/campaigns",
            json={
                "name": "Metrics",
                "mailbox_id": str(mailbox.id),
                "template_id": str(template_id),
                "list_id": str(recipients.id),
                "start_at": MONDAY_0830_IST.isoformat(),
                "daily_cap": campaign_cap,
                "min_gap_seconds": 0,
                "jitter_seconds": 0,
            },
        )
        assert created.status_code == 201, created.text
        campaign_id = created.json()["id"]
        scheduled = await client.post(
            f"/v1/campaigns/{campaign_id}/schedule", headers={"Idempotency-Key": "metrics"}
        )
        assert scheduled.status_code == 202, scheduled.text
        await wait_for_jobs()
        emails = list(
            (
                await session.scalars(
                    select(ScheduledEmail)
                    .where(ScheduledEmail.campaign_id == uuid.UUID(campaign_id))
                    .order_by(ScheduledEmail.to_address)
                )
            ).all()
        )
        assert [e.status for e in emails] == [EmailStatus.ready] * 4
        for minute, email in enumerate(emails):
            email.due_at = MONDAY_0830_IST + timedelta(minutes=minute)
        await session.flush()
        return {"campaign_id": campaign_id, "mailbox": mailbox, "emails": emails}

    async def test_a_campaign_and_a_purchase_move_every_figure(
        self,
        product_app: FastAPI,
        session: AsyncSession,
        settings: Settings,
        tmp_path: Path,
        fake_razorpay: FakeRazorpay,
        frozen_clock: Clock,
    ) -> None:
        frozen_clock.freeze(MONDAY_0830_IST - timedelta(hours=1))
        async with make_client(product_app) as client, make_client(product_app) as razorpay:
            before = await scrape(client)
            ctx = await self._scheduled_campaign(client, session)

            # An hour after the first email was due, nothing has gone out yet.
            frozen_clock.freeze(MONDAY_0830_IST + timedelta(hours=1))
            late = await scrape(client)
            assert late.value("outreach_sending_lag_seconds") == 3600.0

            # The user deletes the first draft in the mailbox: that email fails, refunded.
            first = ctx["emails"][0]
            drafts = tmp_path / "outbox" / str(ctx["mailbox"].id) / "drafts"
            (drafts / f"{first.draft_id}.eml").unlink()
            for _ in range(3):  # ticks as the worker runs them: as jobs
                await jobs.enqueue("campaign.send_due_emails")
                await wait_for_jobs()

            paid = await create_order(client, "pack_100")
            payment = fake_razorpay.pay(paid["razorpay_order_id"], notes=paid["notes"])
            captured = fake_razorpay.webhook("payment.captured", payment=payment)
            assert (await deliver(razorpay, captured)).status_code == 200
            declined = await create_order(client, "pack_100")
            failure = fake_razorpay.pay(declined["razorpay_order_id"], status="failed")
            failed = fake_razorpay.webhook("payment.failed", payment=failure)
            assert (await deliver(razorpay, failed)).status_code == 200

            after = await scrape(client)

        for email in ctx["emails"]:
            await session.refresh(email)
        assert sorted(e.status.value for e in ctx["emails"]) == ["failed", "ready", "sent", "sent"]
        outbox = {"provider": "outbox"}
        assert moved(before, after, "outreach_emails_sent_total", **outbox) == 2
        assert moved(before, after, "outreach_emails_failed_total", **outbox) == 1
        # The campaign's cap of 2 a day held: the fourth email moved to the next day.
        assert moved(before, after, "outreach_emails_deferred_by_cap_total", **outbox) == 1
        assert after.value("outreach_sending_lag_seconds") == 0.0

        tick = {"task": "campaign.send_due_emails"}
        assert moved(before, after, "outreach_jobs_sent_total", **tick) == 3
        assert moved(before, after, "outreach_jobs_run_total", **tick) == 3
        assert moved(before, after, "outreach_jobs_failed_total", **tick) == 0
        prepare = {"task": "campaign.prepare_emails"}
        assert moved(before, after, "outreach_jobs_run_total", **prepare) == 1

        debited, credited = "outreach_credits_debited_total", "outreach_credits_credited_total"
        assert moved(before, after, credited, reason="signup_grant") == 20
        assert moved(before, after, debited, reason="campaign_schedule") == 4
        assert moved(before, after, credited, reason="campaign_refund") == 1
        assert moved(before, after, credited, reason="purchase") == 100
        assert moved(before, after, credited, reason="purchase_bonus") == 20

        assert moved(before, after, "outreach_payments_total", status="created") == 2
        assert moved(before, after, "outreach_payments_total", status="paid") == 1
        assert moved(before, after, "outreach_payments_total", status="failed") == 1

        schedule = "/v1/campaigns/{campaign_id}/schedule"
        requests = "outreach_http_requests_total"
        assert moved(before, after, requests, method="POST", route=schedule, status="202") == 1
        assert ctx["campaign_id"] not in after.text

    async def test_a_mailbox_at_its_daily_cap_defers_its_due_emails(
        self, product_app: FastAPI, session: AsyncSession, frozen_clock: Clock
    ) -> None:
        frozen_clock.freeze(MONDAY_0830_IST - timedelta(hours=1))
        async with make_client(product_app) as client:
            ctx = await self._scheduled_campaign(client, session, campaign_cap=None)
            ctx["mailbox"].daily_cap = 1  # lowered after scheduling
            await session.flush()
            frozen_clock.freeze(MONDAY_0830_IST + timedelta(hours=1))
            before = await scrape(client)
            for _ in range(2):
                await jobs.enqueue("campaign.send_due_emails")
                await wait_for_jobs()
            after = await scrape(client)
        outbox = {"provider": "outbox"}
        assert moved(before, after, "outreach_emails_sent_total", **outbox) == 1
        assert moved(before, after, "outreach_emails_deferred_by_cap_total", **outbox) == 3
        assert after.value("outreach_sending_lag_seconds") == 0.0  # none is due any more


class TestCountedOnCommit:
    """Credits and payments are counted when their transaction commits, never before."""

    @staticmethod
    def granted() -> float:
        from prometheus_client import REGISTRY

        value = REGISTRY.get_sample_value(
            "outreach_credits_credited_total", {"reason": "admin_grant"}
        )
        return value or 0.0

    async def grant(self, session: AsyncSession, user: User, key: str) -> None:
        await credit_service.apply_ledger_entry(
            session, user_id=user.id, delta=7, reason="admin_grant", ref=None, idempotency_key=key
        )

    async def test_a_rolled_back_entry_is_not_counted_a_committed_one_is(
        self, database: Database, session: AsyncSession
    ) -> None:
        user = await create_user(session, "metrics-commit@example.com")
        before = self.granted()

        async def fail_after_the_entry() -> None:
            async with database.session() as rolled_back:
                await self.grant(rolled_back, user, "metrics-rolled-back")
                raise RuntimeError("the request failed after the ledger entry")

        with pytest.raises(RuntimeError):
            await fail_after_the_entry()
        assert self.granted() == before
        async with database.session() as committed:
            await self.grant(committed, user, "metrics-committed")
            assert self.granted() == before  # not yet: the commit comes first
        assert self.granted() == before + 7
        async with database.session() as replay:
            await self.grant(replay, user, "metrics-committed")  # same key: no new entry
        assert self.granted() == before + 7


class TestMultiprocess:
    def _child(self, directory: Path, code: str) -> None:
        environment = {**os.environ, MULTIPROC_DIR_VARIABLE: str(directory)}
        subprocess.run(
            [sys.executable, "-c", f"from outreach.kit import metrics\n{code}"],
            env=environment,
            check=True,
            timeout=120,
        )

    async def test_the_scrape_adds_up_every_process_sharing_the_directory(
        self, client: httpx.AsyncClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        shared = tmp_path / "prometheus"
        shared.mkdir()
        # Two API processes: one still running (its in-flight request counts), one
        # that stopped cleanly (its live gauge is dropped, its counters stay).
        await asyncio.to_thread(
            self._child,
            shared,
            "metrics.EMAILS_SENT.labels('gmail').inc(3)\nmetrics.HTTP_IN_FLIGHT.inc()",
        )
        await asyncio.to_thread(
            self._child,
            shared,
            "metrics.EMAILS_SENT.labels('gmail').inc(4)\nmetrics.HTTP_IN_FLIGHT.inc()\n"
            "metrics.mark_process_dead()",
        )
        monkeypatch.setenv(MULTIPROC_DIR_VARIABLE, str(shared))
        figures = await scrape(client)
        assert figures.value("outreach_emails_sent_total", provider="gmail") == 7
        assert figures.value("outreach_http_requests_in_flight") == 1


class TestServeWorkers:
    """``outreach serve --workers N`` (uvicorn itself replaced by a recorder)."""

    @pytest.fixture
    def uvicorn_runs(self, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
        import uvicorn

        runs: list[dict[str, Any]] = []
        monkeypatch.setattr(uvicorn, "run", lambda app, **options: runs.append(options))
        # Set then deleted, so the variable serve sets is removed again after the test.
        monkeypatch.setenv(MULTIPROC_DIR_VARIABLE, "unset")
        monkeypatch.delenv(MULTIPROC_DIR_VARIABLE)
        return runs

    def test_several_processes_need_redis(
        self, uvicorn_runs: list[dict[str, Any]], settings: Settings
    ) -> None:
        from typer.testing import CliRunner

        from outreach.cli import app as cli_app

        assert settings.redis_url is None
        result = CliRunner().invoke(cli_app, ["serve", "--workers", "2"])
        assert result.exit_code == 1
        assert "--workers above 1 needs OUTREACH_REDIS_URL" in result.output
        assert uvicorn_runs == []

    def test_several_processes_share_a_metrics_directory(
        self, uvicorn_runs: list[dict[str, Any]], settings: Settings
    ) -> None:
        from typer.testing import CliRunner

        from outreach.cli import app as cli_app

        use_settings(settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}))
        try:
            result = CliRunner().invoke(cli_app, ["serve", "--workers", "3"])
        finally:
            use_settings(settings)
        assert result.exit_code == 0, result.output
        [options] = uvicorn_runs
        assert options["workers"] == 3
        shared = Path(os.environ[MULTIPROC_DIR_VARIABLE])  # inherited by the processes
        assert shared.is_dir()
        assert list(shared.iterdir()) == []
        shared.rmdir()

    def test_one_process_keeps_its_metrics_in_memory(
        self, uvicorn_runs: list[dict[str, Any]]
    ) -> None:
        from typer.testing import CliRunner

        from outreach.cli import app as cli_app

        result = CliRunner().invoke(cli_app, ["serve"])
        assert result.exit_code == 0, result.output
        assert uvicorn_runs[0]["workers"] == 1
        assert MULTIPROC_DIR_VARIABLE not in os.environ


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def metrics_server(port: int = 0) -> Iterator[str]:
    server = start_metrics_server(port, "127.0.0.1")
    try:
        yield f"http://127.0.0.1:{server.server_port}/metrics"
    finally:
        server.shutdown()
        server.server_close()


class TestWorkerPort:
    async def test_the_process_serves_its_own_figures_on_its_port(
        self, client: httpx.AsyncClient
    ) -> None:
        with metrics_server() as url:
            async with httpx.AsyncClient() as scraper:
                before = Figures.parse((await scraper.get(url)).text)
                await jobs.enqueue(ALWAYS_FAILS)
                await wait_for_jobs()
                response = await scraper.get(url)
        assert response.status_code == 200
        after = Figures.parse(response.text)
        assert moved(before, after, "outreach_jobs_run_total", task=ALWAYS_FAILS) == 2
        assert moved(before, after, "outreach_jobs_given_up_total", task=ALWAYS_FAILS) == 1

    async def test_the_port_closes_with_the_process_whatever_stops_it(
        self, settings: Settings
    ) -> None:
        from outreach.worker import observability

        port = _free_port()
        answered: list[int] = []

        async def stopped_mid_start() -> None:
            async with observability(settings, "worker", port), httpx.AsyncClient() as scraper:
                answered.append((await scraper.get(f"http://127.0.0.1:{port}/metrics")).status_code)
                raise asyncio.CancelledError  # as when the worker is stopped mid-start

        with pytest.raises(asyncio.CancelledError):
            await stopped_mid_start()
        assert answered == [200]
        async with httpx.AsyncClient() as scraper:
            with pytest.raises(httpx.ConnectError):
                await scraper.get(f"http://127.0.0.1:{port}/metrics")


class TestCommands:
    """``outreach serve --workers``, ``outreach worker`` and ``outreach scheduler`` as
    real processes."""

    @pytest.fixture
    async def queue(self, redis_url: str, engine: AsyncEngine) -> AsyncIterator[str]:
        """A job queue of the test's own, and the database migrated (``engine``)."""
        name = f"metrics-{uuid.uuid4().hex}"
        yield name
        redis = Redis.from_url(redis_url)
        await redis.delete(name)
        await redis.aclose()

    @staticmethod
    def environment(settings: Settings, redis_url: str, queue: str) -> dict[str, str]:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("OUTREACH_")}
        environment.pop(MULTIPROC_DIR_VARIABLE, None)
        return environment | {
            "OUTREACH_ENV": "testing",
            "OUTREACH_SECRET_KEY": "test-secret-key-that-is-long-enough-0123456789",
            "OUTREACH_LOG_JSON": "true",
            "OUTREACH_DATABASE_URL": settings.database_url,
            "OUTREACH_REDIS_URL": redis_url,
            "OUTREACH_JOB_QUEUE_NAME": queue,
            "OUTREACH_PARSING_WORKERS": "1",
        }

    @contextlib.asynccontextmanager
    async def started(
        self, environment: dict[str, str], tmp_path: Path, *args: str
    ) -> AsyncIterator[tuple[asyncio.subprocess.Process, Path]]:
        """Run ``outreach <args>`` (its output in a log file) and stop it afterwards."""
        log_path = tmp_path / f"{args[0]}.log"
        with log_path.open("wb") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                "from outreach.cli import main; main()",
                *args,
                cwd=tmp_path,  # no .env there
                env=environment,
                stdout=log,
                stderr=log,
            )
        try:
            yield process, log_path
        finally:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()

    @contextlib.asynccontextmanager
    async def command(
        self, settings: Settings, redis_url: str, queue: str, tmp_path: Path, *args: str
    ) -> AsyncIterator[str]:
        """Run ``outreach <args> --metrics-port 0``; yields its metrics URL (the port
        it picked, read from its log)."""
        environment = self.environment(settings, redis_url, queue)
        async with self.started(environment, tmp_path, *args, "--metrics-port", "0") as (
            process,
            log_path,
        ):
            port = await _logged_metrics_port(log_path, process)
            yield f"http://127.0.0.1:{port}/metrics"

    async def test_api_processes_add_their_figures_up(
        self, settings: Settings, redis_url: str, queue: str, tmp_path: Path
    ) -> None:
        shared = tmp_path / "prometheus"
        shared.mkdir()
        environment = self.environment(settings, redis_url, queue) | {
            "OUTREACH_STORAGE_PATH": str(tmp_path / "storage"),
            MULTIPROC_DIR_VARIABLE: str(shared),
        }
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        serve = ("serve", "--workers", "2", "--port", str(port))
        async with self.started(environment, tmp_path, *serve) as (process, log_path):
            answered = 0
            deadline = time.monotonic() + PROCESS_START_BOUND_SECONDS
            while time.monotonic() < deadline:  # until both processes are up and answering
                with contextlib.suppress(httpx.TransportError):
                    async with httpx.AsyncClient() as probe:  # a new connection each time
                        answered += (await probe.get(f"{base}/health")).status_code == 200
                if len({p.name.split("_")[-1] for p in shared.glob("counter_*.db")}) >= 2:
                    break
                assert process.returncode is None, log_path.read_text(errors="replace")
                await asyncio.sleep(0.05)
            for _ in range(20):
                async with httpx.AsyncClient() as client:
                    answered += (await client.get(f"{base}/health")).status_code == 200
            async with httpx.AsyncClient() as client:
                figures = await scrape(client, base_url=base)
        writers = {p.name.split("_")[-1] for p in shared.glob("counter_*.db")}
        assert len(writers) == 2, log_path.read_text(errors="replace")
        requests = "outreach_http_requests_total"
        assert figures.value(requests, method="GET", route="/health", status="200") == answered

    async def test_worker_serves_its_own_figures(
        self, settings: Settings, redis_url: str, queue: str, tmp_path: Path
    ) -> None:
        task = {"task": "kit.delete_expired_idempotency_keys"}
        sender = jobs.create_broker(
            settings.model_copy(update={"redis_url": redis_url, "job_queue_name": queue})
        )
        worker = self.command(settings, redis_url, queue, tmp_path, "worker")
        async with worker as url, httpx.AsyncClient() as scraper:
            before = Figures.parse((await _eventually_answers(scraper, url)).text)
            await sender.startup()
            try:
                await AsyncKicker(task["task"], sender, {}).kiq()
            finally:
                await sender.shutdown()
            after = await _scrape_until(
                scraper, url, lambda f: moved(before, f, "outreach_jobs_run_total", **task)
            )
        # Its own process's figures: the job ran there, not in this test process.
        assert before.value("outreach_jobs_run_total", **task) == 0
        assert after.value("outreach_jobs_run_total", **task) == 1
        assert after.value("outreach_jobs_failed_total", **task) == 0
        assert after.value("outreach_job_duration_seconds_count", **task) == 1

    async def test_scheduler_serves_its_own_figures(
        self, settings: Settings, redis_url: str, queue: str, tmp_path: Path
    ) -> None:
        tick = {"task": "campaign.send_due_emails"}
        scheduler = self.command(settings, redis_url, queue, tmp_path, "scheduler")
        async with scheduler as url, httpx.AsyncClient() as scraper:
            # Its first round sends every periodic job (to a queue no worker reads).
            figures = await _scrape_until(
                scraper, url, lambda f: f.value("outreach_jobs_sent_total", **tick)
            )
        assert figures.value("outreach_jobs_sent_total", **tick) == 1
        assert figures.value("outreach_jobs_run_total", **tick) == 0  # it runs none itself


async def _logged_metrics_port(log_path: Path, process: asyncio.subprocess.Process) -> int:
    """The port a process started with --metrics-port 0 logged ("metrics served")."""
    deadline = time.monotonic() + PROCESS_START_BOUND_SECONDS
    while time.monotonic() < deadline:
        for line in log_path.read_text(errors="replace").splitlines():
            if line.startswith("{") and '"metrics served"' in line:
                return int(json.loads(line)["port"])
        if process.returncode is not None:
            break
        await asyncio.sleep(0.05)
    raise AssertionError(f"no metrics port logged:\n{log_path.read_text(errors='replace')}")


async def _eventually_answers(client: httpx.AsyncClient, url: str) -> httpx.Response:
    deadline = time.monotonic() + PROCESS_START_BOUND_SECONDS
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.ConnectError):
            return await client.get(url)
        await asyncio.sleep(0.05)
    raise AssertionError(f"nothing answered at {url}")


async def _scrape_until(
    client: httpx.AsyncClient, url: str, check: Callable[[Figures], float]
) -> Figures:
    for _ in range(400):
        figures = Figures.parse((await client.get(url)).text)
        if check(figures):
            return figures
        await asyncio.sleep(0.05)
    raise AssertionError(f"the figures at {url} never moved")

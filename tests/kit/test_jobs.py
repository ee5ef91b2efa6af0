"""Background jobs: embedded broker, enqueue after commit, retries and the
dead-letter table, Redis streams with an in-process worker, the periodic
schedule, and the worker/scheduler commands."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import structlog
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from taskiq import AsyncBroker, InMemoryBroker, TaskiqMessage, TaskiqMiddleware
from taskiq.api import run_receiver_task, run_scheduler_task
from taskiq.schedule_sources import LabelScheduleSource
from taskiq_redis import RedisStreamBroker
from typer.testing import CliRunner

from outreach import worker
from outreach.cli import app as cli_app
from outreach.config import Settings
from outreach.kit import jobs
from outreach.kit.db import Database, get_database, set_database
from outreach.kit.jobs import RetryMiddleware, enqueue, enqueue_after_commit, job
from outreach.kit.logging import get_logger
from outreach.models import AuditLog, FailedJob
from tests.conftest import wait_for_jobs

T = TypeVar("T")
log = get_logger("tests.kit.jobs")

# The registry is global: test jobs are declared once, at import, before any
# broker is built, under names no other module uses.
WRITE_AUDIT = "test.kit_jobs.write_audit"
CAPTURE_CONTEXT = "test.kit_jobs.capture_context"
ALWAYS_FAILS = "test.kit_jobs.always_fails"
ALWAYS_FAILS_TWICE = "test.kit_jobs.always_fails_twice"
FAILS_ONCE = "test.kit_jobs.fails_once"
TICK = "test.kit_jobs.tick"
NIGHTLY = "test.kit_jobs.nightly"

attempts: Counter[str] = Counter()
contexts: dict[str, dict[str, Any]] = {}
ticks: list[float] = []


@job(WRITE_AUDIT)
async def write_audit(action: str) -> None:
    job_id = structlog.contextvars.get_contextvars().get("job_id")
    async with get_database().session() as session:
        session.add(AuditLog(action=action, details={"job_id": job_id}))


@job(CAPTURE_CONTEXT)
async def capture_context(key: str) -> None:
    contexts[key] = structlog.contextvars.get_contextvars()
    log.info("test job ran", key=key)


@job(ALWAYS_FAILS)
async def always_fails(key: str) -> None:
    attempts[key] += 1
    raise RuntimeError(f"always failing {key}")


@job(ALWAYS_FAILS_TWICE, max_attempts=2)
async def always_fails_twice(key: str) -> None:
    attempts[key] += 1
    raise RuntimeError(f"always failing {key}")


@job(FAILS_ONCE)
async def fails_once(key: str) -> None:
    attempts[key] += 1
    if attempts[key] == 1:
        raise ConnectionError("the first attempt fails")


@job(TICK, every_seconds=1)
async def tick() -> None:
    ticks.append(time.monotonic())


@job(NIGHTLY, cron="0 3 * * *", max_attempts=5)
async def nightly() -> None:
    """Only declared, never run here: its schedule is checked."""


class SentRecorder(TaskiqMiddleware):
    """Remembers every message the broker sent, to see what left and when."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[TaskiqMessage] = []

    def post_send(self, message: TaskiqMessage) -> None:
        self.sent.append(message)


async def eventually(check: Callable[[], Awaitable[T | None]], *, within: float = 10.0) -> T:
    """Poll ``check`` until it returns something truthy, or fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"nothing after {within} s")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def client_broker(settings: Settings) -> AsyncIterator[AsyncBroker]:
    """A started broker installed as the process broker (what ``enqueue`` uses)."""
    broker = jobs.create_broker(settings)
    await broker.startup()
    jobs.set_broker(broker)
    try:
        yield broker
    finally:
        jobs.set_broker(None)
        if isinstance(broker, InMemoryBroker):
            await broker.wait_all()
        await broker.shutdown()


@contextlib.asynccontextmanager
async def running_worker(settings: Settings) -> AsyncIterator[AsyncBroker]:
    """A worker listening in this process, started the way ``run_worker`` does."""
    broker = jobs.create_broker(settings)
    broker.is_worker_process = True
    await broker.startup()
    receiver = asyncio.create_task(run_receiver_task(broker, max_async_tasks=10))
    try:
        yield broker
    finally:
        receiver.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await receiver
        await broker.shutdown()


@contextlib.contextmanager
def installed_database(database: Database) -> Iterator[Database]:
    set_database(database)
    try:
        yield database
    finally:
        set_database(None)


@pytest.fixture
async def broker(settings: Settings, database: Database) -> AsyncIterator[AsyncBroker]:
    """The embedded (in-memory) broker, with jobs writing into the test's transaction."""
    with installed_database(database):
        async with client_broker(settings) as broker:
            yield broker


async def failed_job(database: Database, task_id: str) -> FailedJob | None:
    async with database.session() as session:
        row: FailedJob | None = await session.scalar(
            select(FailedJob).where(FailedJob.task_id == task_id)
        )
        return row


class TestEmbeddedBroker:
    def test_without_redis_the_broker_is_in_memory(self, settings: Settings) -> None:
        assert isinstance(jobs.create_broker(settings), InMemoryBroker)

    async def test_job_runs_in_the_app_process(self, app: FastAPI, session: AsyncSession) -> None:
        action = f"test.{uuid.uuid4().hex}"

        job_id = await enqueue(WRITE_AUDIT, action=action)
        await wait_for_jobs()

        row = await session.scalar(select(AuditLog).where(AuditLog.action == action))
        assert row is not None
        assert row.details == {"job_id": job_id}

    async def test_unknown_job_is_refused(self, broker: AsyncBroker) -> None:
        with pytest.raises(KeyError, match="no job named"):
            await enqueue("test.kit_jobs.nobody")

    async def test_job_log_lines_carry_job_id(self, broker: AsyncBroker) -> None:
        key = uuid.uuid4().hex

        with structlog.testing.capture_logs(
            processors=[structlog.contextvars.merge_contextvars]
        ) as logs:
            job_id = await enqueue(CAPTURE_CONTEXT, key=key)
            await wait_for_jobs()

        assert contexts[key]["job_id"] == job_id
        assert contexts[key]["task"] == CAPTURE_CONTEXT
        [line] = [entry for entry in logs if entry.get("key") == key]
        assert line["event"] == "test job ran"
        assert line["job_id"] == job_id
        assert "job_id" not in structlog.contextvars.get_contextvars()


class TestEnqueueAfterCommit:
    async def test_rolled_back_session_sends_nothing(
        self, broker: AsyncBroker, database: Database
    ) -> None:
        recorder = SentRecorder()
        broker.add_middlewares(recorder)
        key = uuid.uuid4().hex

        async def failing_request() -> None:
            async with database.session() as session:
                enqueue_after_commit(session, CAPTURE_CONTEXT, key=key)
                raise LookupError("the request failed")

        with pytest.raises(LookupError):
            await failing_request()
        await wait_for_jobs()

        assert recorder.sent == []
        assert key not in contexts

    async def test_committed_session_sends_after_the_commit(
        self, broker: AsyncBroker, database: Database
    ) -> None:
        recorder = SentRecorder()
        broker.add_middlewares(recorder)
        key = uuid.uuid4().hex

        async with database.session() as session:
            enqueue_after_commit(session, CAPTURE_CONTEXT, key=key)
            await session.flush()
            assert recorder.sent == []
        await wait_for_jobs()

        [message] = recorder.sent
        assert message.task_name == CAPTURE_CONTEXT
        assert message.kwargs == {"key": key}
        assert contexts[key]["job_id"] == message.task_id


class TestRetries:
    def test_backoff_doubles_each_attempt(self, monkeypatch: pytest.MonkeyPatch) -> None:
        middleware = RetryMiddleware(max_attempts=5, base_delay=0.5)
        monkeypatch.setattr(random, "random", lambda: 0.0)  # no jitter

        assert [middleware.backoff(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 4.0, 8.0]

    def test_backoff_jitter_stays_below_the_next_step(self) -> None:
        middleware = RetryMiddleware(max_attempts=5, base_delay=0.5)

        for attempt in range(1, 8):
            nominal = 0.5 * 2 ** (attempt - 1)
            for _ in range(50):
                assert nominal <= middleware.backoff(attempt) <= nominal * 1.25

    def test_broker_retries_as_the_settings_say(self, settings: Settings) -> None:
        broker = jobs.create_broker(
            settings.model_copy(update={"job_max_retries": 6, "job_retry_base_seconds": 0.25})
        )

        [middleware] = [m for m in broker.middlewares if isinstance(m, RetryMiddleware)]
        assert middleware.max_attempts == 7
        assert middleware.base_delay == 0.25

    async def test_job_failing_every_attempt_lands_in_failed_jobs(
        self, settings: Settings, database: Database
    ) -> None:
        key = uuid.uuid4().hex
        fast = settings.model_copy(update={"job_max_retries": 2, "job_retry_base_seconds": 0.01})

        with installed_database(database):
            async with client_broker(fast):
                task_id = await enqueue(ALWAYS_FAILS, key=key)
                await wait_for_jobs()

        assert attempts[key] == 3
        row = await failed_job(database, task_id)
        assert row is not None
        assert row.task_name == ALWAYS_FAILS
        assert row.args == {"args": [], "kwargs": {"key": key}}
        assert row.error == f"RuntimeError: always failing {key}"
        assert "Traceback" in row.traceback
        assert "in always_fails" in row.traceback
        assert row.attempts == 3
        assert row.retried_at is None

    async def test_job_max_attempts_overrides_the_settings(
        self, broker: AsyncBroker, database: Database
    ) -> None:
        key = uuid.uuid4().hex

        task_id = await enqueue(ALWAYS_FAILS_TWICE, key=key)
        await wait_for_jobs()

        assert attempts[key] == 2
        row = await failed_job(database, task_id)
        assert row is not None
        assert row.attempts == 2

    async def test_job_succeeding_on_retry_leaves_no_failed_job(
        self, broker: AsyncBroker, database: Database
    ) -> None:
        key = uuid.uuid4().hex

        task_id = await enqueue(FAILS_ONCE, key=key)
        await wait_for_jobs()

        assert attempts[key] == 2
        assert await failed_job(database, task_id) is None


@pytest.fixture
async def redis_settings(settings: Settings, redis_url: str) -> AsyncIterator[Settings]:
    """Settings on real Redis with a stream of this test's own; deleted afterwards."""
    queue = f"outreach-test-{uuid.uuid4().hex}"
    redis = Redis.from_url(redis_url)
    await redis.ping()  # unreachable Redis is a failure here, never a skip
    try:
        yield settings.model_copy(update={"redis_url": redis_url, "job_queue_name": queue})
    finally:
        await redis.delete(queue, f"autoclaim:taskiq:{queue}")
        await redis.aclose()


class TestRedisBroker:
    async def test_worker_runs_a_job_sent_by_another_process(
        self, redis_settings: Settings, committing_database: Database
    ) -> None:
        action = f"test.{uuid.uuid4().hex}"

        async def written() -> AuditLog | None:
            async with committing_database.session() as session:
                row: AuditLog | None = await session.scalar(
                    select(AuditLog).where(AuditLog.action == action)
                )
                return row

        with installed_database(committing_database):
            async with running_worker(redis_settings), client_broker(redis_settings) as client:
                assert isinstance(client, RedisStreamBroker)
                job_id = await enqueue(WRITE_AUDIT, action=action)
                row = await eventually(written)

        assert row.details == {"job_id": job_id}

    async def test_failing_job_lands_in_failed_jobs(
        self, redis_settings: Settings, committing_database: Database
    ) -> None:
        key = uuid.uuid4().hex

        with installed_database(committing_database):
            async with running_worker(redis_settings), client_broker(redis_settings):
                task_id = await enqueue(ALWAYS_FAILS_TWICE, key=key)
                row = await eventually(lambda: failed_job(committing_database, task_id))

        assert attempts[key] == 2
        assert row.task_name == ALWAYS_FAILS_TWICE
        assert row.args == {"args": [], "kwargs": {"key": key}}
        assert row.error == f"RuntimeError: always failing {key}"
        assert row.attempts == 2


class TestSchedule:
    async def test_periodic_jobs_carry_their_schedule(self, settings: Settings) -> None:
        source = LabelScheduleSource(jobs.create_broker(settings))
        await source.startup()

        schedules = {s.task_name: s for s in await source.get_schedules()}

        assert schedules[TICK].interval == 1
        assert schedules[NIGHTLY].cron == "0 3 * * *"
        assert schedules[NIGHTLY].labels == {"max_attempts": 5}
        assert WRITE_AUDIT not in schedules

    async def test_embedded_scheduler_runs_a_periodic_job(self, broker: AsyncBroker) -> None:
        started = time.monotonic()
        # Only this job: the project's own periodic jobs would run beside the test.
        scheduler = asyncio.create_task(
            run_scheduler_task(jobs.create_scheduler(broker, only={TICK}))
        )
        try:

            async def ticked() -> bool:
                return any(at >= started for at in ticks)

            await eventually(ticked, within=4.0)
        finally:
            scheduler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await scheduler


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str | None]]:
    """Settings read afresh from the environment (no ``.env``, no cached or active
    settings of other tests), with logging restored afterwards."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(worker, "get_settings", Settings)
    structlog_config = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield {
        "OUTREACH_ENV": "testing",
        "OUTREACH_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}",
        "OUTREACH_REDIS_URL": None,
    }
    structlog.configure(**structlog_config)
    root.handlers, root.level = handlers, level


class TestCommands:
    @pytest.mark.parametrize("command", ["worker", "scheduler"])
    def test_refuses_to_start_without_redis(
        self, command: str, cli_env: dict[str, str | None]
    ) -> None:
        result = CliRunner().invoke(cli_app, [command], env=cli_env)

        assert result.exit_code == 1
        assert f"outreach {command} needs OUTREACH_REDIS_URL" in result.output
        assert "embedded default" in result.output

    @pytest.mark.parametrize("command", ["serve", "worker", "scheduler", "migrate"])
    def test_help(self, command: str) -> None:
        result = CliRunner().invoke(cli_app, [command, "--help"])

        assert result.exit_code == 0, result.output
        assert "Usage:" in result.output

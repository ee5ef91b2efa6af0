"""Background jobs on taskiq.

Jobs are declared with :func:`job` (name, optional schedule, attempts) in each
domain's ``tasks.py`` and registered on a broker chosen by settings when the
process starts: taskiq's in-process broker for the embedded default, Redis
streams when ``OUTREACH_REDIS_URL`` is set. Keeping the registry apart from the
broker lets one code base run either way and lets tests build both.

A failed attempt is retried with exponential backoff; after the last one a
``failed_jobs`` row keeps the task name, arguments, error and traceback.
Every run is counted and timed by task (``kit/metrics.py``) and every failure
reported to Sentry when it is on (``kit/sentry.py``).
"""

from __future__ import annotations

import asyncio
import random
import traceback
import uuid
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession
from taskiq import AsyncBroker, InMemoryBroker, TaskiqMessage, TaskiqMiddleware, TaskiqResult
from taskiq.exceptions import SendTaskError
from taskiq.kicker import AsyncKicker
from taskiq.schedule_sources import LabelScheduleSource
from taskiq.scheduler.scheduled_task import ScheduledTask
from taskiq.scheduler.scheduler import TaskiqScheduler

from outreach.config import Settings
from outreach.kit import metrics
from outreach.kit.db import after_commit, before_commit, get_database
from outreach.kit.errors import ServiceUnavailable
from outreach.kit.logging import get_logger
from outreach.kit.sentry import SentryJobMiddleware
from outreach.kit.tables import FailedJob

log = get_logger("outreach.jobs")

JobFunction = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class JobSpec:
    name: str
    function: JobFunction
    max_attempts: int | None
    schedule: list[dict[str, Any]] = field(default_factory=list)


_registry: dict[str, JobSpec] = {}


def job(
    name: str,
    *,
    every_seconds: int | None = None,
    cron: str | None = None,
    max_attempts: int | None = None,
) -> Callable[[JobFunction], JobFunction]:
    """Declare a background job; ``every_seconds``/``cron`` make it periodic."""

    def register(function: JobFunction) -> JobFunction:
        schedule: list[dict[str, Any]] = []
        if every_seconds is not None:
            schedule.append({"interval": every_seconds})
        if cron is not None:
            schedule.append({"cron": cron})
        if name in _registry and _registry[name].function is not function:
            raise ValueError(f"two jobs are named {name!r}")
        _registry[name] = JobSpec(name, function, max_attempts, schedule)
        return function

    return register


def registered_jobs() -> dict[str, JobSpec]:
    return dict(_registry)


class JobContextMiddleware(TaskiqMiddleware):
    """Binds ``job_id`` and ``task`` to every log line a job writes."""

    def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage:
        structlog.contextvars.bind_contextvars(job_id=message.task_id, task=message.task_name)
        return message

    def post_execute(self, message: TaskiqMessage, result: TaskiqResult[Any]) -> None:
        structlog.contextvars.unbind_contextvars("job_id", "task")


class JobMetricsMiddleware(TaskiqMiddleware):
    """Counts jobs sent and run, failed runs, and their duration, by task."""

    def post_send(self, message: TaskiqMessage) -> None:
        metrics.JOBS_SENT.labels(message.task_name).inc()

    def post_execute(self, message: TaskiqMessage, result: TaskiqResult[Any]) -> None:
        metrics.JOBS_RUN.labels(message.task_name).inc()
        metrics.JOB_DURATION.labels(message.task_name).observe(result.execution_time)
        if result.is_err:
            metrics.JOBS_FAILED.labels(message.task_name).inc()


class RetryMiddleware(TaskiqMiddleware):
    """Retries a failed job with exponential backoff, then records it in ``failed_jobs``."""

    def __init__(self, *, max_attempts: int, base_delay: float) -> None:
        super().__init__()
        self.max_attempts = max_attempts
        self.base_delay = base_delay

    def backoff(self, attempt: int) -> float:
        return float(self.base_delay * (2 ** (attempt - 1)) * (1 + random.random() / 4))

    async def on_error(
        self, message: TaskiqMessage, result: TaskiqResult[Any], exception: BaseException
    ) -> None:
        attempt = int(message.labels.get("attempt", 1))
        max_attempts = int(message.labels.get("max_attempts", self.max_attempts))
        if attempt < max_attempts:
            delay = self.backoff(attempt)
            log.warning("job failed, retrying", attempt=attempt, delay=delay, error=str(exception))
            # The retry is sent only after the backoff; until then the message stays
            # unacknowledged on Redis, so a worker that dies here loses nothing.
            await asyncio.sleep(delay)
            await (
                AsyncKicker(message.task_name, self.broker, dict(message.labels))
                .with_task_id(message.task_id)
                .with_labels(attempt=attempt + 1)
                .kiq(*message.args, **message.kwargs)
            )
            return
        log.error("job failed for good", attempts=attempt, error=str(exception))
        metrics.JOBS_GIVEN_UP.labels(message.task_name).inc()
        await record_failed_job(message, exception, attempts=attempt)


async def record_failed_job(
    message: TaskiqMessage, exception: BaseException, *, attempts: int
) -> None:
    async with get_database().session() as session:
        session.add(
            FailedJob(
                task_name=message.task_name,
                task_id=message.task_id,
                args={"args": list(message.args), "kwargs": dict(message.kwargs)},
                error=f"{type(exception).__name__}: {exception}",
                traceback="".join(traceback.format_exception(exception)),
                attempts=attempts,
                retried_at=None,
            )
        )


def create_broker(settings: Settings) -> AsyncBroker:
    """The broker for these settings, with every declared job registered on it."""
    broker: AsyncBroker
    if settings.redis_url:
        from taskiq_redis import RedisStreamBroker

        broker = RedisStreamBroker(settings.redis_url, queue_name=settings.job_queue_name)
    else:
        broker = InMemoryBroker(max_stored_results=1000, await_inplace=settings.jobs_inline)
    max_attempts = settings.job_max_retries + 1
    # Error hooks run last-added first: metrics and Sentry see a failure before the
    # retry middleware waits out its backoff.
    broker.add_middlewares(
        JobContextMiddleware(),
        RetryMiddleware(max_attempts=max_attempts, base_delay=settings.job_retry_base_seconds),
        JobMetricsMiddleware(),
        SentryJobMiddleware(max_attempts=max_attempts),
    )
    for spec in _registry.values():
        labels = _message_labels(spec)
        if spec.schedule:
            labels["schedule"] = spec.schedule
        broker.register_task(spec.function, task_name=spec.name, **labels)
    return broker


def _message_labels(spec: JobSpec) -> dict[str, Any]:
    """Labels every message of the job carries, however it is sent (the schedule
    stays on the broker: the scheduler reads it there)."""
    labels: dict[str, Any] = {}
    if spec.max_attempts is not None:
        labels["max_attempts"] = spec.max_attempts
    return labels


class _OnlySource(LabelScheduleSource):
    """The label schedules of some jobs only (tests run one periodic job alone)."""

    def __init__(self, broker: AsyncBroker, only: Collection[str]) -> None:
        super().__init__(broker)
        self.only = set(only)

    async def get_schedules(self) -> list[ScheduledTask]:
        return [s for s in await super().get_schedules() if s.task_name in self.only]


def create_scheduler(
    broker: AsyncBroker, *, only: Collection[str] | None = None
) -> TaskiqScheduler:
    """Sends every periodic job (or those named in ``only``) when it is due."""
    source = LabelScheduleSource(broker) if only is None else _OnlySource(broker, only)
    return TaskiqScheduler(broker, [source])


_broker: AsyncBroker | None = None


def set_broker(broker: AsyncBroker | None) -> None:
    global _broker
    _broker = broker


def get_broker() -> AsyncBroker:
    if _broker is None:
        raise RuntimeError("job broker not initialised")
    return _broker


async def enqueue(name: str, **kwargs: Any) -> str:
    """Send a job now; returns its id. Inside a request use :func:`enqueue_after_commit`."""
    spec = _registry.get(name)
    if spec is None:
        raise KeyError(f"no job named {name!r}")
    # A bare kicker sends no labels: pass the job's own, or its max_attempts is lost.
    kicker: AsyncKicker[Any, Any] = AsyncKicker(name, get_broker(), _message_labels(spec))
    task = await kicker.kiq(**kwargs)
    return str(task.task_id)


class JobQueueUnavailable(ServiceUnavailable):
    code, title = "job_queue_unavailable", "The job queue cannot be reached"


async def ensure_broker_reachable() -> None:
    """Raise 503 when the broker (Redis) cannot take jobs. Checked before a commit that
    will send jobs, while the work can still roll back: never work stored without
    its job. The in-process broker is always reachable."""
    pool = getattr(get_broker(), "connection_pool", None)
    if pool is None:
        return
    try:
        async with Redis(connection_pool=pool) as redis:  # borrows the pool, leaves it open
            await asyncio.wait_for(redis.ping(), timeout=5)
    except (RedisError, OSError) as exc:
        log.error("job queue unavailable", error=str(exc))
        raise JobQueueUnavailable(
            "background jobs cannot be queued right now; nothing was changed, retry shortly",
            headers={"Retry-After": "5"},
        ) from exc


def enqueue_after_commit(session: AsyncSession, name: str, **kwargs: Any) -> None:
    """Send a job once ``session`` commits, so a rolled-back request starts nothing.

    The broker is checked before the commit (503 when down); should it fail between
    that check and the send, the job is kept in ``failed_jobs`` (to be re-sent from
    there) rather than failing a request whose work is already stored."""

    async def send() -> None:
        try:
            await enqueue(name, **kwargs)
        except (SendTaskError, RedisError, OSError) as exc:
            log.error("job not queued; kept in failed_jobs", task=name, error=str(exc))
            await record_unqueued_job(name, kwargs, exc)

    before_commit(session, ensure_broker_reachable)
    after_commit(session, send)


async def record_unqueued_job(name: str, kwargs: dict[str, Any], exception: Exception) -> None:
    async with get_database().session() as session:
        session.add(
            FailedJob(
                task_name=name,
                task_id=uuid.uuid4().hex,  # never sent, so never given one
                args={"args": [], "kwargs": kwargs},
                error=f"not queued: {type(exception).__name__}: {exception}",
                traceback="".join(traceback.format_exception(exception)),
                attempts=0,
                retried_at=None,
            )
        )

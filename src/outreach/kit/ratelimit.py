"""Fixed-window rate limits: Redis when configured, the database otherwise.

A hit is counted in its own transaction, so a request that then fails (a bad
sign-in, say) still counts against the limit. When Redis is configured but
cannot be reached, the hit is counted in the database instead: the limit holds
and sign-in keeps working (neither open to brute force nor closed to everyone).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import delete

from outreach.kit.clock import utcnow
from outreach.kit.db import Database, dialect_insert
from outreach.kit.errors import TooManyRequests
from outreach.kit.logging import get_logger
from outreach.kit.tables import RateLimitBucket

log = get_logger("outreach.ratelimit")


class RateLimited(TooManyRequests):
    code, title = "rate_limited", "Too many requests"


def _window_start(now: datetime, window_seconds: int) -> datetime:
    epoch = int(now.timestamp())
    return datetime.fromtimestamp(epoch - epoch % window_seconds, tz=now.tzinfo)


class RateLimiter:
    def __init__(self, *, database: Database, redis: Redis | None) -> None:
        self.database = database
        self.redis = redis

    async def hit(self, key: str, *, limit: int, window_seconds: int) -> None:
        """Count one attempt for ``key``; raise 429 with ``Retry-After`` over ``limit``."""
        now = utcnow()
        window_start = _window_start(now, window_seconds)
        count: int | None = None
        if self.redis is not None:
            try:
                count = await self._hit_redis(key, window_start, window_seconds)
            except (RedisError, OSError) as exc:
                log.warning("redis unavailable; rate limit counted in the database", error=str(exc))
        if count is None:
            count = await self._hit_database(key, window_start, window_seconds)
        if count > limit:
            retry_after = (window_start + timedelta(seconds=window_seconds)) - now
            seconds = max(1, math.ceil(retry_after.total_seconds()))
            raise RateLimited(
                f"too many attempts; retry in {seconds} seconds",
                headers={"Retry-After": str(seconds)},
                retry_after=seconds,
            )

    async def _hit_redis(self, key: str, window_start: datetime, window_seconds: int) -> int:
        assert self.redis is not None
        redis_key = f"outreach:ratelimit:{key}:{int(window_start.timestamp())}"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(redis_key)
            pipe.expire(redis_key, window_seconds + 5)
            count, _ = await pipe.execute()
        return int(count)

    async def _hit_database(self, key: str, window_start: datetime, window_seconds: int) -> int:
        async with self.database.session() as session:
            statement = (
                dialect_insert(session)(RateLimitBucket)
                .values(key=key, window_start=window_start, count=1)
                .on_conflict_do_update(
                    index_elements=["key", "window_start"],
                    set_={"count": RateLimitBucket.count + 1},
                )
                .returning(RateLimitBucket.count)
            )
            count = int((await session.execute(statement)).scalar_one())
            # Old windows are useless; drop them as we go.
            await session.execute(
                delete(RateLimitBucket).where(
                    RateLimitBucket.key == key,
                    RateLimitBucket.window_start < window_start - timedelta(seconds=window_seconds),
                )
            )
        return count

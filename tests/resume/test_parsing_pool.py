"""The parsing pool: results and errors come back; a worker past its time limit,
crashed or out of memory is killed and replaced, and the pool keeps working."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from outreach.kit.parsing_pool import ParserCrashed, ParsingPool, ParsingTimedOut
from tests.resume import pool_tasks


@pytest.fixture
async def pool() -> AsyncIterator[ParsingPool]:
    pool = ParsingPool(workers=1, timeout_seconds=30, memory_limit_mb=512)
    pool.start()
    await pool.warm_up()
    yield pool
    await pool.stop()


async def test_runs_a_function_with_arguments(pool: ParsingPool) -> None:
    assert await pool.run(pool_tasks.add, 2, b=3) == 5


async def test_the_functions_own_exception_comes_back(pool: ParsingPool) -> None:
    with pytest.raises(ValueError, match="bad file"):
        await pool.run(pool_tasks.fail, "bad file")


async def test_workers_are_reused_not_started_per_task(pool: ParsingPool) -> None:
    first = await pool.run(pool_tasks.worker_pid)
    assert await pool.run(pool_tasks.worker_pid) == first


async def test_a_task_past_its_time_limit_is_killed_and_replaced(pool: ParsingPool) -> None:
    before = await pool.run(pool_tasks.worker_pid)
    with pytest.raises(ParsingTimedOut):
        await pool.run(pool_tasks.sleep_for, 60, timeout=0.5)
    after = await pool.run(pool_tasks.worker_pid)
    assert after != before


async def test_a_crashed_worker_is_replaced(pool: ParsingPool) -> None:
    with pytest.raises(ParserCrashed):
        await pool.run(pool_tasks.die)
    assert await pool.run(pool_tasks.add, 1, b=1) == 2


async def test_memory_is_capped_in_the_worker(pool: ParsingPool) -> None:
    with pytest.raises(MemoryError):
        await pool.run(pool_tasks.allocate, 2048)
    assert await pool.run(pool_tasks.allocate, 16) == 16 * 1024 * 1024


async def test_the_app_starts_one_pool_and_stops_it(app) -> None:
    from outreach.kit.parsing_pool import get_parsing_pool

    assert get_parsing_pool() is app.state.parsing_pool
    assert await app.state.parsing_pool.run(pool_tasks.add, 1, b=2) == 3

"""Stopping a process gracefully: SIGTERM asks, the work in flight notices.

``outreach worker``, ``outreach scheduler`` and the API's embedded jobs call
:func:`stop_on_signals` (or :meth:`StopRequest.request` themselves). Work that
claims things (the send tick) asks :func:`stop_requested` before each claim,
and hands back what it claimed but has not started, so another process takes
it; what has started is finished. The process then waits a bounded time
(``OUTREACH_STOP_GRACE_SECONDS``) for its jobs, and gives up on what is left:
an unfinished send keeps its lease and is reconciled later, as after a crash.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from typing import Any

from outreach.kit.logging import get_logger

log = get_logger("outreach.shutdown")


class StopRequest:
    """Whether this process has been asked to stop (one per process)."""

    def __init__(self) -> None:
        self._requested = False
        self._waiters: list[asyncio.Event] = []

    @property
    def requested(self) -> bool:
        return self._requested

    def request(self) -> None:
        if not self._requested:
            log.info("stop requested: no new work is claimed")
        self._requested = True
        for waiter in self._waiters:
            waiter.set()

    def reset(self) -> None:
        """Back to running (an API process's lifespan ends and a new one may start)."""
        self._requested = False
        self._waiters.clear()

    async def wait(self) -> None:
        if self._requested:
            return
        waiter = asyncio.Event()
        self._waiters.append(waiter)
        try:
            await waiter.wait()
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)


stop_request = StopRequest()


def stop_requested() -> bool:
    """True once SIGTERM (or an embedding app's shutdown) has asked this process to stop."""
    return stop_request.requested


def stop_on_signals(*signals: signal.Signals) -> None:
    """SIGTERM and SIGINT (or ``signals``) request a stop instead of killing the process."""
    loop = asyncio.get_running_loop()
    for number in signals or (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, stop_request.request)


async def within(seconds: float, what: str, step: Awaitable[Any]) -> bool:
    """Await a step for at most ``seconds``; True when it finished. One that hangs (a
    client's close stuck on a dead connection) is cancelled and abandoned, so the
    process still exits in time."""
    task = asyncio.ensure_future(step)
    done, _ = await asyncio.wait({task}, timeout=max(seconds, 0.0))
    if not done:
        task.cancel()
        log.warning("step abandoned at the stop deadline", step=what, seconds=seconds)
        return False
    task.result()
    return True


async def close_all(seconds: float, steps: list[tuple[str, Callable[[], Awaitable[Any]]]]) -> None:
    """Run the clean-up steps in turn within ``seconds`` in all; a failing one is logged
    and the next still runs, and whatever is left at the deadline is skipped."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    for what, step in steps:
        try:
            await within(deadline - loop.time(), what, step())
        except Exception as exc:
            log.warning("clean-up step failed", step=what, error=repr(exc))

"""A pre-started pool of worker processes for parsing untrusted files.

PDF, DOCX, CSV and XLSX parsers run on attacker-controlled bytes: a crafted
file can loop, allocate without bound or crash the interpreter. A thread
cannot be stopped, so parsing runs in worker processes (``pebble``): a task
past its time limit has its worker killed and replaced, a crashed worker is
replaced, and the API process never notices more than an error. Workers are
started with the app (forked from a ``forkserver`` that has already imported
the parser libraries), so a file costs no process start.

Use it from any domain::

    pool = request.app.state.parsing_pool          # or get_parsing_pool()
    result = await pool.run(extract_document, data, timeout=10)  # kwargs pass through too

``function`` must be a module-level function (it is pickled by reference) and
its arguments and result plain, picklable data. Its module should call
``preload_in_workers(__name__, "heavy_library", ...)`` at import time, so the
workers start with it loaded. It may raise an exception of
its own for a bad file; that exception is re-raised here unchanged.
:class:`ParsingTimedOut` and :class:`ParserCrashed` say the worker was killed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import concurrent.futures.process
import multiprocessing
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from pebble import ProcessExpired, ProcessPool

from outreach.config import Settings
from outreach.kit.logging import get_logger

log = get_logger("outreach.parsing_pool")

T = TypeVar("T")

# Imported once in the forkserver, so every forked worker starts with them loaded
# (a worker that had to import them would cost seconds per start). "__main__" too,
# as multiprocessing does by default: otherwise each worker re-runs the main module.
_preload: list[str] = ["__main__", "outreach.kit.parsing_pool"]


def preload_in_workers(*modules: str) -> None:
    """Have workers start with ``modules`` imported (call at import time, before the
    first pool starts: the forkserver reads the list once per process)."""
    for module in modules:
        if module not in _preload:
            _preload.append(module)


class ParsingPoolError(Exception):
    """The worker could not finish the task; the file is to blame, not the caller."""


class ParsingTimedOut(ParsingPoolError):
    """The task ran past its time limit; its worker was killed and replaced."""


class ParserCrashed(ParsingPoolError):
    """The worker died (crash, out of memory) while running the task; it was replaced."""


def _limit_memory(megabytes: int) -> None:
    """Worker initializer: cap the address space so a decompression bomb fails fast."""
    import resource

    if megabytes > 0:
        limit = megabytes * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _ready() -> bool:
    return True


class ParsingPool:
    """Worker processes that run parsers with a time limit; see the module docstring."""

    def __init__(
        self,
        *,
        workers: int = 2,
        timeout_seconds: float = 20.0,
        memory_limit_mb: int = 1024,
        max_tasks_per_worker: int = 200,
    ) -> None:
        self.workers = max(1, workers)
        self.timeout_seconds = timeout_seconds
        self.memory_limit_mb = memory_limit_mb
        self.max_tasks_per_worker = max_tasks_per_worker
        self._pool: ProcessPool | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> ParsingPool:
        return cls(
            workers=settings.parsing_workers,
            timeout_seconds=settings.parsing_timeout_seconds,
            memory_limit_mb=settings.parsing_memory_limit_mb,
        )

    def _new_pool(self) -> ProcessPool:
        context = multiprocessing.get_context("forkserver")
        # Only takes effect before the forkserver starts; harmless afterwards.
        context.set_forkserver_preload(list(_preload))  # missing modules are skipped
        return ProcessPool(
            max_workers=self.workers,
            max_tasks=self.max_tasks_per_worker,  # a leaky parser cannot grow a worker forever
            initializer=_limit_memory,
            initargs=(self.memory_limit_mb,),
            context=context,
        )

    def start(self) -> None:
        """Start the workers now (pebble would otherwise wait for the first task)."""
        with self._lock:
            if self._pool is None or not self._pool.active:
                self._pool = self._new_pool()
                self._pool.schedule(_ready)  # launches every worker process

    async def warm_up(self) -> None:
        """Wait until a worker answers (benchmarks and tests that time the pool)."""
        await self.run(_ready, timeout=60)

    async def run(
        self,
        function: Callable[..., T],
        *args: Any,
        timeout: float | None = None,  # noqa: ASYNC109 - the worker's limit, enforced by pebble
        **kwargs: Any,
    ) -> T:
        """Run ``function(*args, **kwargs)`` in a worker within ``timeout`` seconds (default:
        the pool's); raises what the function raises, or a :class:`ParsingPoolError`."""
        future = self._schedule(function, args, kwargs, timeout or self.timeout_seconds)
        try:
            return await asyncio.wrap_future(future)
        except concurrent.futures.TimeoutError as exc:
            log.warning("parser timed out", function=function.__name__, timeout=timeout)
            raise ParsingTimedOut(f"{function.__name__} ran past its time limit") from exc
        except ProcessExpired as exc:
            log.warning("parser worker died", function=function.__name__, exitcode=exc.exitcode)
            raise ParserCrashed(f"the parser stopped unexpectedly (exit {exc.exitcode})") from exc
        except concurrent.futures.process.BrokenProcessPool as exc:
            raise ParserCrashed("the parser pool broke; it is restarted") from exc
        except asyncio.CancelledError:
            future.cancel()  # pebble stops the worker running it
            raise

    def _schedule(
        self,
        function: Callable[..., T],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float,
    ) -> concurrent.futures.Future[T]:
        self.start()
        assert self._pool is not None
        try:
            return self._pool.schedule(function, args=args, kwargs=kwargs, timeout=timeout)
        except RuntimeError:
            # The pool broke (every worker died at once): replace it and try once more.
            with self._lock:
                self._discard()
            self.start()
            return self._pool.schedule(function, args=args, kwargs=kwargs, timeout=timeout)

    def _discard(self) -> None:
        if self._pool is not None:
            self._pool.stop()  # type: ignore[no-untyped-call]
            self._pool.join(timeout=10)
            self._pool = None

    async def stop(self) -> None:
        """Stop the workers, abandoning running tasks (app shutdown)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.stop()  # type: ignore[no-untyped-call]
            await asyncio.to_thread(pool.join, 10)


_pool: ParsingPool | None = None


def set_parsing_pool(pool: ParsingPool | None) -> None:
    global _pool
    _pool = pool


def get_parsing_pool() -> ParsingPool:
    """The process's pool (set by the app lifespan, or the worker process)."""
    if _pool is None:
        raise RuntimeError("parsing pool not started")
    return _pool


def clear_parsing_pool(pool: ParsingPool) -> None:
    """Forget ``pool`` if it is the process's pool (an app shutting down)."""
    global _pool
    if _pool is pool:
        _pool = None

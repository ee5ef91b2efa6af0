"""Module-level tasks for the parsing-pool tests (workers import them by name)."""

from __future__ import annotations

import os
import signal
import time

from outreach.kit.parsing_pool import preload_in_workers

preload_in_workers(__name__)


def worker_pid() -> int:
    return os.getpid()


def sleep_for(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def allocate(megabytes: int) -> int:
    return len(bytearray(megabytes * 1024 * 1024))


def fail(message: str) -> None:
    raise ValueError(message)


def add(a: int, *, b: int) -> int:
    return a + b

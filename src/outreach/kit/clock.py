"""The one source of the current time, so tests can move it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class Clock:
    """Wall clock in UTC; ``freeze``/``advance`` let tests control it."""

    def __init__(self) -> None:
        self._frozen: datetime | None = None

    def now(self) -> datetime:
        return self._frozen if self._frozen is not None else datetime.now(UTC)

    def freeze(self, at: datetime | None = None) -> datetime:
        moment = at or datetime.now(UTC)
        if moment.tzinfo is None:
            raise ValueError("the clock only holds aware datetimes")
        self._frozen = moment.astimezone(UTC)
        return self._frozen

    def advance(self, delta: timedelta) -> datetime:
        return self.freeze(self.now() + delta)

    def unfreeze(self) -> None:
        self._frozen = None


clock = Clock()


def utcnow() -> datetime:
    return clock.now()

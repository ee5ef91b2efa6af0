"""When each email goes out: spreading sends over sending windows.

Pure functions, no I/O. A window is a set of weekdays and hours in a time
zone (the campaign's, or a recipient's when the campaign sends in the
recipient's business hours). Sends keep at least ``min_gap`` apart plus a
random jitter, never more than ``daily_cap`` fall on one day of the
mailbox's own time zone (counting what is already scheduled), and at most
``company_cap`` go to one company domain in any 7 days. Emails over a cap
are not dropped: they move to the next window.
"""

from __future__ import annotations

import random
from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

COMPANY_WINDOW = timedelta(days=7)
MAX_PLANNING_DAYS = 3660  # a plan that needs ten years is a configuration error


class PlanningError(ValueError):
    pass


@dataclass(frozen=True)
class SendingWindow:
    timezone: ZoneInfo
    weekdays: frozenset[int]  # Monday = 0
    start: time
    end: time

    def __post_init__(self) -> None:
        if not self.weekdays or not self.weekdays <= set(range(7)):
            raise PlanningError("a sending window needs at least one weekday (0=Monday … 6=Sunday)")
        if self.start >= self.end:
            raise PlanningError("a sending window must start before it ends")

    def bounds(self, day: date) -> tuple[datetime, datetime]:
        """The window of a local ``day``, in UTC."""
        return _window_bounds(self, day)

    def earliest_at_or_after(self, moment: datetime) -> datetime:
        """The first instant at or after ``moment`` inside this window."""
        day = moment.astimezone(self.timezone).date()
        for offset in range(MAX_PLANNING_DAYS):
            current = day + timedelta(days=offset)
            if current.weekday() not in self.weekdays:
                continue
            start, end = self.bounds(current)
            if moment < end:
                return max(moment, start)
        raise PlanningError("no sending time found within ten years")


@lru_cache(maxsize=4096)
def _window_bounds(window: SendingWindow, day: date) -> tuple[datetime, datetime]:
    # Cached: planning 10,000 sends asks for the same few days over and over.
    start = datetime.combine(day, window.start, tzinfo=window.timezone).astimezone(UTC)
    # fold=1: when the end falls in a spring-forward gap, the window closes at the
    # jump rather than an hour after it (the local hours never exceed the window).
    end = datetime.combine(day, window.end, tzinfo=window.timezone).replace(fold=1).astimezone(UTC)
    return start, end


@dataclass(frozen=True)
class EmailToPlan:
    key: object  # the caller's id for this email
    company_domain: str | None = None  # None: free-mail, or no company cap
    window: SendingWindow | None = None  # None: the plan's default window


@dataclass
class PlanResult:
    due_at: dict[object, datetime]
    deferred_by_company_cap: list[object] = field(default_factory=list)

    @property
    def first(self) -> datetime | None:
        return min(self.due_at.values(), default=None)

    @property
    def last(self) -> datetime | None:
        return max(self.due_at.values(), default=None)


@dataclass
class _Ledger:
    """What is already booked: sends per mailbox day, and per company."""

    mailbox_timezone: ZoneInfo
    daily_cap: int
    company_cap: int
    per_day: defaultdict[date, int] = field(default_factory=lambda: defaultdict(int))
    per_company: defaultdict[str, list[datetime]] = field(default_factory=lambda: defaultdict(list))

    def day_of(self, moment: datetime) -> date:
        return moment.astimezone(self.mailbox_timezone).date()

    def next_day_start(self, moment: datetime) -> datetime:
        day = self.day_of(moment) + timedelta(days=1)
        return datetime.combine(day, time(0), tzinfo=self.mailbox_timezone).astimezone(UTC)

    def day_full(self, moment: datetime) -> bool:
        return self.per_day[self.day_of(moment)] >= self.daily_cap

    def company_free_from(self, domain: str | None, moment: datetime) -> datetime:
        """The first instant at or after ``moment`` when ``domain`` is under its cap."""
        if domain is None:
            return moment
        booked = sorted(self.per_company[domain])
        while True:
            recent = [t for t in booked if moment - COMPANY_WINDOW < t <= moment + COMPANY_WINDOW]
            inside = [t for t in recent if t > moment - COMPANY_WINDOW and t <= moment]
            later = [t for t in recent if t > moment]
            if len(inside) + len(later) < self.company_cap:
                return moment
            # Wait until the oldest send in the window leaves it.
            moment = min(inside or later) + COMPANY_WINDOW + timedelta(seconds=1)

    def book(self, moment: datetime, domain: str | None) -> None:
        self.per_day[self.day_of(moment)] += 1
        if domain is not None:
            self.per_company[domain].append(moment)


def plan_sends(
    emails: Sequence[EmailToPlan],
    *,
    start_at: datetime,
    window: SendingWindow,
    mailbox_timezone: ZoneInfo,
    daily_cap: int,
    min_gap: timedelta,
    jitter: timedelta,
    company_cap: int | None = None,
    booked_times: Iterable[datetime] = (),
    booked_company_times: Iterable[tuple[str, datetime]] = (),
    seed: int | None = None,
) -> PlanResult:
    """Give every email a due time (UTC), in order, under every cap.

    ``booked_times`` are the mailbox's sends already scheduled (other
    campaigns) and ``booked_company_times`` the user's recent and planned
    sends per company domain, so caps hold across campaigns.
    """
    if daily_cap < 1:
        raise PlanningError("the daily cap must be at least 1")
    if start_at.tzinfo is None:
        raise PlanningError("start_at must be timezone-aware")
    rng = random.Random(seed)
    ledger = _Ledger(mailbox_timezone, daily_cap, company_cap or 10**9)
    for moment in booked_times:
        ledger.per_day[ledger.day_of(moment)] += 1
    for domain, moment in booked_company_times:
        ledger.per_company[domain].append(moment)

    result = PlanResult(due_at={})
    cursor = start_at.astimezone(UTC)
    deferred: deque[EmailToPlan] = deque()
    first = True
    for email in emails:
        candidate = cursor if first else cursor + min_gap + rng.random() * jitter
        slot = _place(email, candidate, window, ledger, honour_company_cap=False)
        if (
            email.company_domain is not None
            and ledger.company_free_from(email.company_domain, slot) > slot
        ):
            deferred.append(email)  # placed after the others, once its company is free
            continue
        ledger.book(slot, email.company_domain)
        result.due_at[email.key] = slot
        cursor, first = slot, False
    for email in sorted(deferred, key=lambda e: ledger.company_free_from(e.company_domain, cursor)):
        candidate = max(
            cursor + (timedelta(0) if first else min_gap + rng.random() * jitter),
            ledger.company_free_from(email.company_domain, cursor),
        )
        slot = _place(email, candidate, window, ledger, honour_company_cap=True)
        ledger.book(slot, email.company_domain)
        result.due_at[email.key] = slot
        result.deferred_by_company_cap.append(email.key)
        cursor, first = slot, False
    return result


def _place(
    email: EmailToPlan,
    candidate: datetime,
    default: SendingWindow,
    ledger: _Ledger,
    *,
    honour_company_cap: bool,
) -> datetime:
    """The first time at or after ``candidate`` in the email's window, on a mailbox
    day with room under the cap (and, if asked, with its company under its cap)."""
    window = email.window or default
    moment = candidate
    for _ in range(MAX_PLANNING_DAYS * 4):
        moment = window.earliest_at_or_after(moment)
        if ledger.day_full(moment):
            moment = ledger.next_day_start(moment)
            continue
        if honour_company_cap:
            free = ledger.company_free_from(email.company_domain, moment)
            if free > moment:
                moment = free
                continue
        return moment
    raise PlanningError("no sending time found within ten years")


def emails_per_day(due_times: Iterable[datetime], timezone: ZoneInfo) -> dict[str, int]:
    """How many sends fall on each local day (for the projected schedule)."""
    counts: dict[str, int] = defaultdict(int)
    for moment in due_times:
        counts[moment.astimezone(timezone).date().isoformat()] += 1
    return dict(sorted(counts.items()))

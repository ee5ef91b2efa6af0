"""Spreading sends: windows, gaps, daily caps in the mailbox's day, company caps, DST."""

from collections import Counter
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from outreach.campaign.planning import (
    EmailToPlan,
    PlanningError,
    SendingWindow,
    emails_per_day,
    plan_sends,
)

KOLKATA = ZoneInfo("Asia/Kolkata")
NEW_YORK = ZoneInfo("America/New_York")
WEEKDAYS = frozenset(range(5))


def window(tz: ZoneInfo = KOLKATA, start: int = 9, end: int = 17, days=WEEKDAYS) -> SendingWindow:
    return SendingWindow(timezone=tz, weekdays=frozenset(days), start=time(start), end=time(end))


def emails(n: int, domain: str | None = None) -> list[EmailToPlan]:
    return [EmailToPlan(key=i, company_domain=domain) for i in range(n)]


MONDAY_8AM_IST = datetime(2026, 11, 30, 8, 0, tzinfo=KOLKATA)


def test_sends_stay_inside_the_window_with_the_gap() -> None:
    result = plan_sends(
        emails(30),
        start_at=MONDAY_8AM_IST,
        window=window(),
        mailbox_timezone=KOLKATA,
        daily_cap=250,
        min_gap=timedelta(minutes=5),
        jitter=timedelta(minutes=2),
        seed=1,
    )
    times = [result.due_at[i] for i in range(30)]
    assert times == sorted(times)
    assert times[0] == datetime(2026, 11, 30, 9, 0, tzinfo=KOLKATA)
    for earlier, later in zip(times, times[1:], strict=False):
        assert timedelta(minutes=5) <= later - earlier <= timedelta(minutes=7)
    assert all(time(9) <= t.astimezone(KOLKATA).time() < time(17) for t in times)


def test_daily_cap_moves_the_rest_to_the_next_window_not_away() -> None:
    result = plan_sends(
        emails(25),
        start_at=datetime(2026, 12, 4, 8, tzinfo=KOLKATA),  # a Friday
        window=window(),
        mailbox_timezone=KOLKATA,
        daily_cap=10,
        min_gap=timedelta(minutes=1),
        jitter=timedelta(0),
        seed=1,
    )
    per_day = emails_per_day(result.due_at.values(), KOLKATA)
    assert per_day == {"2026-12-04": 10, "2026-12-07": 10, "2026-12-08": 5}  # weekend skipped
    assert len(result.due_at) == 25


def test_already_booked_sends_count_against_the_cap() -> None:
    booked = [datetime(2026, 11, 30, 10, tzinfo=KOLKATA)] * 8
    result = plan_sends(
        emails(5),
        start_at=MONDAY_8AM_IST,
        window=window(),
        mailbox_timezone=KOLKATA,
        daily_cap=10,
        min_gap=timedelta(minutes=1),
        jitter=timedelta(0),
        booked_times=booked,
    )
    assert emails_per_day(result.due_at.values(), KOLKATA) == {"2026-11-30": 2, "2026-12-01": 3}


def test_cap_is_counted_in_the_mailbox_day_not_the_window_day() -> None:
    # Window in New York, mailbox in Kolkata: New York afternoon is the next Kolkata day.
    result = plan_sends(
        emails(6),
        start_at=datetime(2026, 11, 30, 9, tzinfo=NEW_YORK),
        window=window(NEW_YORK, 9, 17),
        mailbox_timezone=KOLKATA,
        daily_cap=3,
        min_gap=timedelta(hours=1),
        jitter=timedelta(0),
    )
    per_kolkata_day = emails_per_day(result.due_at.values(), KOLKATA)
    assert all(count <= 3 for count in per_kolkata_day.values())
    assert len(result.due_at) == 6


def test_company_cap_defers_instead_of_dropping() -> None:
    mixed = [EmailToPlan(key=i, company_domain="acme.com" if i < 4 else None) for i in range(6)]
    result = plan_sends(
        mixed,
        start_at=MONDAY_8AM_IST,
        window=window(),
        mailbox_timezone=KOLKATA,
        daily_cap=250,
        min_gap=timedelta(minutes=5),
        jitter=timedelta(0),
        company_cap=2,
    )
    assert sorted(result.deferred_by_company_cap) == [2, 3]
    acme = sorted(result.due_at[i] for i in range(4))
    # No 7-day span holds more than two acme.com sends.
    for index in range(len(acme) - 2):
        assert acme[index + 2] - acme[index] > timedelta(days=7)
    assert len(result.due_at) == 6


def test_company_cap_counts_other_campaigns() -> None:
    earlier = [("acme.com", MONDAY_8AM_IST - timedelta(days=1))] * 2
    result = plan_sends(
        emails(1, "acme.com"),
        start_at=MONDAY_8AM_IST,
        window=window(),
        mailbox_timezone=KOLKATA,
        daily_cap=250,
        min_gap=timedelta(minutes=5),
        jitter=timedelta(0),
        company_cap=2,
        booked_company_times=earlier,
    )
    assert result.due_at[0] >= MONDAY_8AM_IST + timedelta(days=6)


def test_recipient_window_wins_when_given() -> None:
    ny = window(NEW_YORK, 9, 17)
    result = plan_sends(
        [EmailToPlan(key="ny", window=ny), EmailToPlan(key="in")],
        start_at=MONDAY_8AM_IST,
        window=window(),
        mailbox_timezone=KOLKATA,
        daily_cap=250,
        min_gap=timedelta(minutes=5),
        jitter=timedelta(0),
    )
    ny_local = result.due_at["ny"].astimezone(NEW_YORK)
    assert time(9) <= ny_local.time() < time(17)


def test_dst_change_keeps_local_hours() -> None:
    # New York falls back on 2026-11-01: 9:00 local is 14:00 UTC before, 14:00 → 15:00 after.
    result = plan_sends(
        emails(2),
        start_at=datetime(2026, 10, 30, 16, 59, tzinfo=NEW_YORK),  # Friday
        window=window(NEW_YORK, 9, 17),
        mailbox_timezone=NEW_YORK,
        daily_cap=1,
        min_gap=timedelta(minutes=1),
        jitter=timedelta(0),
    )
    assert result.due_at[0] == datetime(2026, 10, 30, 16, 59, tzinfo=NEW_YORK)
    assert result.due_at[1].astimezone(NEW_YORK).replace(tzinfo=None) == datetime(2026, 11, 2, 9, 0)
    assert result.due_at[1].astimezone(UTC).hour == 14


@pytest.mark.parametrize("bad", [{"days": ()}, {"start": 17, "end": 9}, {"start": 9, "end": 9}])
def test_bad_windows_are_refused(bad: dict) -> None:
    with pytest.raises(PlanningError):
        window(**bad)


@settings(max_examples=60, deadline=None)
@given(
    count=st.integers(min_value=1, max_value=120),
    cap=st.integers(min_value=1, max_value=40),
    gap_minutes=st.integers(min_value=0, max_value=90),
    jitter_minutes=st.integers(min_value=0, max_value=30),
    start_hour=st.integers(min_value=0, max_value=22),
    hours=st.integers(min_value=1, max_value=12),
    days=st.frozensets(st.integers(min_value=0, max_value=6), min_size=1),
    tz=st.sampled_from(
        ["Asia/Kolkata", "America/New_York", "Europe/London", "Australia/Lord_Howe"]
    ),
    offset_hours=st.integers(min_value=0, max_value=24 * 14),
)
def test_plan_properties(
    count: int,
    cap: int,
    gap_minutes: int,
    jitter_minutes: int,
    start_hour: int,
    hours: int,
    days: frozenset[int],
    tz: str,
    offset_hours: int,
) -> None:
    zone = ZoneInfo(tz)
    end_hour = min(start_hour + hours, 23)
    sending = SendingWindow(
        timezone=zone, weekdays=days, start=time(start_hour), end=time(end_hour, 59)
    )
    start = datetime(2026, 3, 1, tzinfo=UTC) + timedelta(hours=offset_hours)
    gap = timedelta(minutes=gap_minutes)
    result = plan_sends(
        emails(count),
        start_at=start,
        window=sending,
        mailbox_timezone=zone,
        daily_cap=cap,
        min_gap=gap,
        jitter=timedelta(minutes=jitter_minutes),
        seed=7,
    )
    times = [result.due_at[i] for i in range(count)]
    assert len(times) == count  # nobody is dropped
    assert times[0] >= start
    for earlier, later in zip(times, times[1:], strict=False):
        assert later - earlier >= gap
    for moment in times:
        local = moment.astimezone(zone)
        assert local.weekday() in days
        assert time(start_hour) <= local.time() < time(end_hour, 59)
    assert max(Counter(t.astimezone(zone).date() for t in times).values()) <= cap

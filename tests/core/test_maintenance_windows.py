"""Recurring maintenance windows, pure (core/maintenance_windows.py): daylight saving, weekdays, who owns maintenance."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from haltless.core.maintenance_windows import (
    Frequency,
    MachineView,
    Window,
    next_occurrence,
    occurrence,
    plan_windows,
    schedule_error,
)

S = 1_000_000


def at(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * S)


def window(**overrides: object) -> Window:
    values: dict[str, object] = {
        "id": "w",
        "tenant_id": "t",
        "machine_id": "m",
        "tag": None,
        "frequency": Frequency.DAILY,
        "days": (),
        "start_time": "01:00",
        "duration_seconds": 4 * 3600.0,
        "timezone": "Europe/Berlin",
    }
    values.update(overrides)
    return Window(**values)  # type: ignore[arg-type]


def test_daily_window_follows_the_clock_change_in_spring() -> None:
    """01:00 Berlin is 00:00 UTC before 2026-03-29 and 23:00 UTC (the day before) after; 4 h stay 4 real hours."""
    daily = window()
    assert occurrence(daily, at("2026-03-28T23:59:59+00:00")) is None
    assert occurrence(daily, at("2026-03-29T00:00:00+00:00")) == (
        at("2026-03-29T00:00:00+00:00"),
        at("2026-03-29T04:00:00+00:00"),
    )
    assert occurrence(daily, at("2026-03-29T03:59:59+00:00")) is not None
    assert occurrence(daily, at("2026-03-29T04:00:00+00:00")) is None
    assert next_occurrence(daily, at("2026-03-29T04:00:00+00:00")) == (
        at("2026-03-29T23:00:00+00:00"),
        at("2026-03-30T03:00:00+00:00"),
    )


def test_daily_window_follows_the_clock_change_in_autumn() -> None:
    daily = window()
    assert occurrence(daily, at("2026-10-24T23:00:00+00:00")) is not None  # 01:00 CEST
    assert occurrence(daily, at("2026-10-25T22:59:59+00:00")) is None
    assert occurrence(daily, at("2026-10-26T00:00:00+00:00")) is not None  # 01:00 CET


def test_a_start_in_the_skipped_hour_starts_that_much_later_and_a_repeated_one_at_its_first() -> None:
    spring = window(start_time="02:30", duration_seconds=600.0)
    assert next_occurrence(spring, at("2026-03-29T00:00:00+00:00")) == (
        at("2026-03-29T01:30:00+00:00"),  # 03:30 CEST
        at("2026-03-29T01:40:00+00:00"),
    )
    autumn = window(start_time="02:30", duration_seconds=600.0)
    assert next_occurrence(autumn, at("2026-10-25T00:00:00+00:00")) == (
        at("2026-10-25T00:30:00+00:00"),  # the first 02:30 (CEST)
        at("2026-10-25T00:40:00+00:00"),
    )


def test_weekly_windows_start_on_their_days_only_and_may_run_past_midnight() -> None:
    weekly = window(
        frequency=Frequency.WEEKLY, days=("sat",), start_time="22:00", duration_seconds=6 * 3600.0, timezone="UTC"
    )
    assert occurrence(weekly, at("2026-12-05T23:00:00+00:00")) is not None  # Saturday night
    assert occurrence(weekly, at("2026-12-06T03:59:00+00:00")) is not None  # Sunday morning, same occurrence
    assert occurrence(weekly, at("2026-12-06T22:30:00+00:00")) is None  # Sunday night
    assert occurrence(weekly, at("2026-12-04T23:00:00+00:00")) is None  # Friday night
    assert next_occurrence(weekly, at("2026-12-06T04:00:00+00:00")) == (
        at("2026-12-12T22:00:00+00:00"),
        at("2026-12-13T04:00:00+00:00"),
    )
    assert occurrence(window(enabled=False), at("2026-12-05T00:30:00+00:00")) is None


@given(
    st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]),
    st.integers(0, 23),
    st.sampled_from([0, 15, 30, 59]),
    st.sampled_from([60.0, 3600.0, 5 * 3600.0, 30 * 3600.0]),
    st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31)),
)
def test_on_exactly_within_an_occurrence(zone: str, hour: int, minute: int, duration: float, when: datetime) -> None:
    """`occurrence` agrees with `next_occurrence` asked just before: on from its start (inclusive) to its end."""
    daily = window(start_time=f"{hour:02d}:{minute:02d}", duration_seconds=duration, timezone=zone)
    now = int(when.replace(tzinfo=UTC).timestamp() * S)
    upcoming = next_occurrence(daily, now)
    assert upcoming is not None
    start, end = upcoming
    assert end - start == int(duration * S)
    on = occurrence(daily, now)
    assert (on is not None) == (start <= now)
    assert occurrence(daily, start) is not None
    assert occurrence(daily, end - 1) is not None
    after = occurrence(daily, end)
    assert after is None or after[0] > start  # only a later, overlapping occurrence goes on
    assert start - now < int((duration + 2 * 86_400) * S)


def test_the_scheduler_enters_and_leaves_only_window_maintenance() -> None:
    by_tag = window(machine_id=None, tag="press")
    on, off = at("2026-12-05T00:30:00+00:00"), at("2026-12-05T12:00:00+00:00")
    machines = [
        MachineView("a", ("press",), False, None),  # covered: enters
        MachineView("b", ("press",), True, None),  # a user's maintenance: left alone
        MachineView("c", ("lathe",), False, None),  # not covered
    ]
    changes = plan_windows([by_tag], machines, on)
    assert (changes.enter, changes.leave) == ({"a": "w"}, [])
    after = [
        MachineView("a", ("press",), True, "w"),
        MachineView("b", ("press",), True, None),
        MachineView("c", ("lathe",), False, None),
    ]
    assert not plan_windows([by_tag], after, on)
    changes = plan_windows([by_tag], after, off)
    assert (changes.enter, changes.leave) == ({}, ["a"])
    assert plan_windows([], after, on).leave == ["a"]  # a deleted window lets its machines go


def test_schedule_errors_say_what_is_wrong() -> None:
    def error(**overrides: object) -> str | None:
        values: dict[str, object] = {
            "frequency": Frequency.DAILY,
            "days": [],
            "start_time": "01:00",
            "duration_seconds": 60.0,
            "timezone": "UTC",
        }
        values.update(overrides)
        return schedule_error(**values)  # type: ignore[arg-type]

    assert error() is None
    assert error(timezone="Mars/Olympus_Mons") == (
        "timezone: unknown time zone 'Mars/Olympus_Mons'; use an IANA name such as 'Europe/Berlin' or 'UTC'"
    )
    assert str(error(timezone="../../etc/passwd")).startswith("timezone: unknown time zone")
    assert str(error(duration_seconds=0.0)).startswith("duration_seconds: must be more than 0")
    assert str(error(duration_seconds=8 * 86_400.0)).startswith("duration_seconds:")
    assert str(error(start_time="24:00")).startswith("start_time:")
    assert str(error(start_time="7:00")).startswith("start_time:")
    assert error(frequency=Frequency.WEEKLY) == "days: a weekly window needs at least one weekday"
    assert str(error(frequency=Frequency.WEEKLY, days=["monday"])).startswith("days: unknown weekday")
    assert error(frequency=Frequency.WEEKLY, days=["mon", "mon"]) == "days: a weekday is listed twice"
    assert str(error(days=["mon"])).startswith("days: a daily window takes no days")
    assert timedelta(days=7).total_seconds() == 604_800  # MAX_DURATION_SECONDS is a week

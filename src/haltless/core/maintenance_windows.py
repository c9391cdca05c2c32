"""Recurring maintenance windows, pure: when a window is on, and which machines it puts into maintenance.

A window repeats `daily` or `weekly` (on some weekdays) at a local `start_time` in an IANA time zone and lasts
`duration_seconds` of real time. Local times follow the zone's daylight-saving rules (zoneinfo): a window at
01:00 Europe/Berlin starts at 00:00 UTC in winter and 23:00 UTC (the day before) in summer. On the day the clocks
go forward a start time inside the skipped hour starts that much later (02:30 becomes 03:30); on the day they go
back a start time that happens twice starts at its first occurrence. Nothing here reads a clock.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MICROS = 1_000_000
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# A window longer than a week would overlap its next occurrence: that is maintenance for good.
MAX_DURATION_SECONDS = 7 * 86_400.0
_START_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class Frequency(StrEnum):
    """How a window repeats."""

    DAILY = "daily"
    WEEKLY = "weekly"  # on `days`


@dataclass(frozen=True, slots=True)
class Window:
    """A recurring maintenance window of a machine, or of every machine with a tag."""

    id: str
    tenant_id: str
    machine_id: str | None
    tag: str | None
    frequency: Frequency
    days: tuple[str, ...]  # weekly: mon … sun
    start_time: str  # HH:MM, local
    duration_seconds: float
    timezone: str
    enabled: bool = True

    def applies_to(self, machine_id: str, tags: Iterable[str]) -> bool:
        if self.machine_id is not None:
            return self.machine_id == machine_id
        return self.tag is not None and self.tag in tags


def zone_error(name: str) -> str | None:
    """Why `name` is not a usable IANA time zone, or None."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return f"timezone: unknown time zone {name!r}; use an IANA name such as 'Europe/Berlin' or 'UTC'"
    return None


def schedule_error(
    frequency: Frequency, days: Sequence[str], start_time: str, duration_seconds: float, timezone: str
) -> str | None:
    """Why a window's schedule is unusable (a 422 detail), or None."""
    if not _START_TIME.match(start_time):
        return f"start_time: {start_time!r} is not a time of day as HH:MM (00:00 – 23:59)"
    if not 0 < duration_seconds <= MAX_DURATION_SECONDS:
        return f"duration_seconds: must be more than 0 and at most {MAX_DURATION_SECONDS:g} (a week)"
    unknown = [day for day in days if day not in WEEKDAYS]
    if unknown:
        return f"days: unknown weekday(s) {', '.join(map(repr, unknown))}; use {', '.join(WEEKDAYS)}"
    if len(set(days)) != len(days):
        return "days: a weekday is listed twice"
    if frequency is Frequency.WEEKLY and not days:
        return "days: a weekly window needs at least one weekday"
    if frequency is Frequency.DAILY and days:
        return "days: a daily window takes no days (use frequency 'weekly' to choose weekdays)"
    return zone_error(timezone)


def _starts(window: Window, first: date, last: date) -> list[int]:
    """The window's start times (µs) on the local dates `first` … `last`."""
    zone = ZoneInfo(window.timezone)
    hour, minute = (int(part) for part in window.start_time.split(":"))
    starts = []
    day = first
    while day <= last:
        if window.frequency is Frequency.DAILY or WEEKDAYS[day.weekday()] in window.days:
            local = datetime.combine(day, time(hour, minute), tzinfo=zone)
            # A local time in the skipped hour does not exist: interpreted with the offset before the change,
            # it lands that much later in real time (round-tripped through UTC to normalise it).
            starts.append(int(local.astimezone(UTC).timestamp() * MICROS))
        day += timedelta(days=1)
    return starts


def _local_date(window: Window, at_us: int) -> date:
    return datetime.fromtimestamp(at_us / MICROS, ZoneInfo(window.timezone)).date()


def occurrence(window: Window, now_us: int) -> tuple[int, int] | None:
    """The occurrence [start, end) (µs) that is on at `now_us`, or None (disabled windows are never on)."""
    if not window.enabled:
        return None
    duration = int(window.duration_seconds * MICROS)
    today = _local_date(window, now_us)
    back = int(window.duration_seconds // 86_400) + 2
    on = [s for s in _starts(window, today - timedelta(days=back), today) if s <= now_us < s + duration]
    return (max(on), max(on) + duration) if on else None


def next_occurrence(window: Window, now_us: int) -> tuple[int, int] | None:
    """The occurrence on at `now_us`, else the next one to start; None for a disabled window."""
    if not window.enabled:
        return None
    current = occurrence(window, now_us)
    if current is not None:
        return current
    duration = int(window.duration_seconds * MICROS)
    today = _local_date(window, now_us)
    later = [s for s in _starts(window, today, today + timedelta(days=8)) if s > now_us]
    return (min(later), min(later) + duration) if later else None


@dataclass(frozen=True, slots=True)
class MachineView:
    """What the scheduler knows of a machine: its tags, whether it is in maintenance, and which window (if any)
    put it there (None: a user did, or it is not in maintenance)."""

    machine_id: str
    tags: tuple[str, ...]
    maintenance: bool
    window_id: str | None


@dataclass(frozen=True, slots=True)
class WindowChanges:
    """Machines to put into maintenance (with the window that does it) and machines to take out."""

    enter: dict[str, str]
    leave: list[str]

    def __bool__(self) -> bool:
        return bool(self.enter or self.leave)


def plan_windows(windows: Sequence[Window], machines: Iterable[MachineView], now_us: int) -> WindowChanges:
    """What the windows change at `now_us`: a machine a window covers goes into maintenance; a machine a window
    put there leaves when no window covers it any more. Maintenance a user set is never touched; while a window
    is on, its machines stay in maintenance (end it early by disabling or editing the window)."""
    on = sorted((w for w in windows if occurrence(w, now_us) is not None), key=lambda w: w.id)
    enter: dict[str, str] = {}
    leave: list[str] = []
    for machine in machines:
        covering = next((w for w in on if w.applies_to(machine.machine_id, machine.tags)), None)
        if covering is not None and not machine.maintenance:
            enter[machine.machine_id] = covering.id
        elif covering is None and machine.maintenance and machine.window_id is not None:
            leave.append(machine.machine_id)
    return WindowChanges(enter, sorted(leave))

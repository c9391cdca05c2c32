"""The clock, as the layers that need the time are given it: one per app, injected, never read on the side."""

from __future__ import annotations

from typing import Protocol


class Clock(Protocol):
    """Wall-clock time in microseconds since the Unix epoch."""

    def now_us(self) -> int: ...


def now_seconds(clock: Clock) -> int:
    """Whole seconds since the epoch (JWT `iat`/`exp`, session lifetimes)."""
    return clock.now_us() // 1_000_000


class ManualClock:
    """A clock that moves only when told to (tests)."""

    def __init__(self, now_us: int) -> None:
        self._now_us = now_us

    def now_us(self) -> int:
        return self._now_us

    def advance(self, seconds: float) -> None:
        self._now_us += round(seconds * 1_000_000)

    def set(self, now_us: int) -> None:
        self._now_us = now_us

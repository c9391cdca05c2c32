"""The system clock (core/clock.py has the protocol and a manual clock for tests)."""

from __future__ import annotations

import time


class SystemClock:
    """The host's wall clock."""

    def now_us(self) -> int:
        return time.time_ns() // 1000

"""Reconnect delays: exponential backoff with jitter. Pure: the random source comes in as an argument."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

# Past this many doublings every delay is the cap anyway; stopping here keeps `multiplier ** n` finite.
_MAX_EXPONENT = 64


@dataclass(frozen=True, slots=True)
class Backoff:
    """How a stream waits between reconnect attempts.

    Retry n (1-based) waits `min(maximum, initial * multiplier ** (n - 1))`, shortened at random by up to
    `jitter` of itself so that many clients dropped by one server restart do not come back in lockstep.
    The count starts over once a connection has been healthy: it delivered a real event, or stayed up for
    `healthy_after` seconds.
    """

    initial: float = 1.0
    maximum: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.2
    healthy_after: float = 10.0

    def __post_init__(self) -> None:
        if self.initial < 0 or self.maximum < self.initial or self.multiplier < 1 or not 0 <= self.jitter <= 1:
            raise ValueError("Backoff needs 0 <= initial <= maximum, multiplier >= 1 and 0 <= jitter <= 1")

    def ceiling(self, attempt: int) -> float:
        """The delay before retry `attempt` without jitter."""
        exponent = min(max(attempt - 1, 0), _MAX_EXPONENT)
        return min(self.maximum, self.initial * self.multiplier**exponent)

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """The delay before retry `attempt`, jitter applied."""
        return self.ceiling(attempt) * (1.0 - self.jitter * rand())

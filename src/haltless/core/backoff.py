"""Retry delays: capped exponential backoff with jitter, the one policy of every retry loop.

The client's stream reconnects, the agent's uplink and sources, the Redis bus's reconnects and the notification
dispatcher's retries all wait by it. Pure: the random draw comes in as an argument.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

# Past this many doublings every delay is the cap anyway; stopping here keeps `multiplier ** n` finite
# (2.0 ** 1024 raises OverflowError, which a loop retrying for hours would otherwise reach).
_MAX_EXPONENT = 64


@dataclass(frozen=True, slots=True)
class Backoff:
    """How a loop waits between attempts.

    Retry n (1-based) waits `min(maximum, initial * multiplier ** (n - 1))`, shortened at random by up to
    `jitter` of itself so that many clients failed by one outage do not come back in lockstep (`jitter=0.5`
    is "equal jitter": between half and all of the ceiling).
    """

    initial: float = 1.0
    maximum: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.initial < 0 or self.maximum < self.initial or self.multiplier < 1 or not 0 <= self.jitter <= 1:
            raise ValueError("Backoff needs 0 <= initial <= maximum, multiplier >= 1 and 0 <= jitter <= 1")

    def ceiling(self, attempt: int) -> float:
        """The delay before retry `attempt` without jitter."""
        exponent = min(max(attempt - 1, 0), _MAX_EXPONENT)
        return min(self.maximum, self.initial * self.multiplier**exponent)

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """The delay before retry `attempt`, jitter applied (`rand()` in [0, 1]: 0 waits the whole ceiling)."""
        return self.jittered(attempt, rand())

    def jittered(self, attempt: int, draw: float) -> float:
        """`delay` for a random number already drawn (planners that are handed their randomness)."""
        return self.ceiling(attempt) * (1.0 - self.jitter * draw)

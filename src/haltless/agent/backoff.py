"""Retry delays of the agent's loops: the shared backoff policy (core/backoff.py) and a count of failures."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from haltless.core import backoff

# Half of each delay is fixed, the other half random: spreads a fleet of agents apart after an outage.
_EQUAL_JITTER = 0.5


@dataclass(slots=True)
class Backoff:
    """Delays double from `initial` up to `maximum`; `reset` after a success starts small again."""

    initial: float
    maximum: float
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0
    _policy: backoff.Backoff = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # An initial delay above the maximum means every delay is the maximum (the config allows either order).
        self._policy = backoff.Backoff(min(self.initial, self.maximum), self.maximum, jitter=_EQUAL_JITTER)

    def next_delay(self) -> float:
        """The delay before the next attempt."""
        self.attempt += 1
        return self._policy.delay(self.attempt, self.rng.random)

    def reset(self) -> None:
        """After a success the next failure starts small again."""
        self.attempt = 0

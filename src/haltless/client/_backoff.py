"""Reconnect delays of the stream: the shared backoff policy (core/backoff.py) and when a connection was healthy."""

from __future__ import annotations

from dataclasses import dataclass

from haltless.core.backoff import Backoff as _Policy


@dataclass(frozen=True, slots=True)
class Backoff(_Policy):
    """How a stream waits between reconnect attempts.

    Retry n (1-based) waits `min(maximum, initial * multiplier ** (n - 1))`, shortened at random by up to
    `jitter` of itself so that many clients dropped by one server restart do not come back in lockstep.
    The count starts over once a connection has been healthy: it delivered a real event, or stayed up for
    `healthy_after` seconds.
    """

    healthy_after: float = 10.0

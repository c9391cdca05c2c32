"""The Redis bus waits between reconnects by the shared backoff policy (core/backoff.py)."""

from __future__ import annotations

from haltless.bus.redis import RECONNECT_BACKOFF


def test_the_redis_bus_survives_a_day_long_outage() -> None:
    """Its copy computed 0.1 * 2.0 ** failures: after 1,024 reconnect attempts (about an hour at its 5 s cap)
    that raised OverflowError, ending the subscriber and the publish recovery for good."""
    assert [RECONNECT_BACKOFF.ceiling(n) for n in (1, 2, 3)] == [0.2, 0.4, 0.8]
    assert RECONNECT_BACKOFF.delay(20_000, rand=lambda: 0.0) == 5.0
    assert 2.5 <= RECONNECT_BACKOFF.delay(20_000) <= 5.0

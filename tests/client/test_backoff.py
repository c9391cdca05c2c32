"""Reconnect delays: the pure policy."""

from __future__ import annotations

import pytest

from haltless.client import Backoff


def test_delays_double_from_one_second_up_to_thirty() -> None:
    backoff = Backoff(jitter=0)
    assert [backoff.delay(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
    assert backoff.delay(10_000) == 30  # no overflow however long the outage


def test_jitter_only_shortens_a_delay() -> None:
    backoff = Backoff()
    assert backoff.delay(3, rand=lambda: 0.0) == 4
    assert backoff.delay(3, rand=lambda: 1.0) == pytest.approx(4 * 0.8)
    assert backoff.delay(9, rand=lambda: 0.999) <= 30


def test_nonsense_policies_are_refused() -> None:
    with pytest.raises(ValueError, match="Backoff"):
        Backoff(initial=5, maximum=1)

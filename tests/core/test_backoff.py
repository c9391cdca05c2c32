"""The one backoff policy of every retry loop (client stream, agent, Redis bus, notification dispatcher)."""

from __future__ import annotations

import pytest

from haltless.core.backoff import Backoff
from haltless.core.notifications import RETRY_BACKOFF


def test_ceilings_double_up_to_the_maximum_and_never_overflow() -> None:
    policy = Backoff(initial=0.5, maximum=8.0)
    assert [policy.ceiling(n) for n in range(0, 7)] == [0.5, 0.5, 1, 2, 4, 8, 8]
    assert policy.ceiling(100_000) == 8.0


def test_jitter_shortens_by_up_to_its_share_of_the_ceiling() -> None:
    policy = Backoff(initial=4.0, maximum=4.0, jitter=0.5)
    assert policy.delay(1, rand=lambda: 0.0) == 4.0
    assert policy.delay(1, rand=lambda: 1.0) == 2.0
    assert policy.jittered(1, 0.25) == 3.5


def test_notification_retries_wait_5_s_doubling_to_5_minutes() -> None:
    assert [RETRY_BACKOFF.ceiling(n) for n in (1, 2, 3, 10, 10_000)] == [5, 10, 20, 300, 300]


def test_nonsense_policies_are_refused() -> None:
    for kwargs in ({"initial": 5.0, "maximum": 1.0}, {"multiplier": 0.5}, {"jitter": 1.5}, {"initial": -1.0}):
        with pytest.raises(ValueError, match="Backoff"):
            Backoff(**kwargs)

"""Remote clock estimates: a deadline computed from them holds whatever the true offset and round trips were."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from haltless.core.remote_clock import ClockEstimate, measured, remote_deadline, tighter

_US = st.integers(0, 10**12)
_OFFSET = st.integers(-(10**15), 10**15)


@given(
    true_offset=_OFFSET,
    sent=_US,
    round_trip=st.integers(0, 500_000),
    ran_at=st.floats(0, 1),
    later=st.integers(0, 120_000_000),
    within=st.integers(1, 1_000_000),
    runs_after=st.integers(0, 2_000_000),
)
def test_a_command_that_meets_its_deadline_ran_within_the_promised_time(
    true_offset: int, sent: int, round_trip: int, ran_at: float, later: int, within: int, runs_after: int
) -> None:
    """Measured at one round trip, used `later` µs after: remote time ≤ deadline ⇒ local time ≤ now + within."""
    received = sent + round_trip
    remote = sent + int(round_trip * ran_at) + true_offset  # the remote clock read somewhere in the round trip
    estimate = measured(sent, received, remote)
    now = received + later
    deadline = remote_deadline(estimate, now, within)
    if deadline is None:
        return
    for local_run in (now + runs_after, now + within, now + within + 1):
        if local_run + true_offset <= deadline:
            assert local_run <= now + within


def test_a_loose_estimate_promises_nothing() -> None:
    estimate = measured(0, 600_000, 300_000)  # a 0.6 s round trip: ± 0.3 s
    assert remote_deadline(estimate, 600_000, 250_000) is None
    assert remote_deadline(estimate, 600_000, 400_000) is not None


def test_estimates_widen_with_age_and_the_tighter_one_wins() -> None:
    old = ClockEstimate(offset=100, uncertainty=500, at=0)
    assert old.uncertainty_at(1_000_000) == 1_500  # 1 ms per second of age
    loose_now = ClockEstimate(offset=90, uncertainty=1_000, at=1_000_000)
    assert tighter(old, loose_now) is loose_now  # the old one has widened past it
    tight_then = ClockEstimate(offset=90, uncertainty=2_000, at=100_000)
    assert tighter(old, tight_then) is old
    assert tighter(None, old) is old


def test_a_reply_before_its_request_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot arrive before"):
        measured(10, 5, 0)

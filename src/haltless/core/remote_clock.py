"""Where a remote clock (Redis's `TIME`) stands against ours, estimated from round trips, and deadlines in it.

A command sent at local time `sent`, answered at `received`, whose reply carries the remote time at which it
ran, puts the remote clock `remote - (sent + received) / 2` ahead of ours, give or take half the round trip.
The estimate keeps the tightest sample and widens with age, because clocks drift apart. A deadline computed
from it can be checked by the remote side: a command that runs before its deadline (remote clock) ran before
its sender gave up on it (local clock), so a command that arrives late can refuse to run instead of landing
after newer ones. All times are microseconds; the local clock is any monotonic one.
"""

from __future__ import annotations

from dataclasses import dataclass

# How fast an estimate loses precision with age: 1 ms per second, twice the 500 ppm by which NTP may slew a
# clock, so an old sample never claims more than it knows.
DRIFT_PER_SECOND = 1e-3


@dataclass(frozen=True, slots=True)
class ClockEstimate:
    """The remote clock is `offset` µs ahead of the local one, within `uncertainty` µs, as measured at `at`."""

    offset: int
    uncertainty: int
    at: int

    def uncertainty_at(self, now: int) -> int:
        """The uncertainty at local time `now`: the measured one plus the drift allowed since."""
        return self.uncertainty + int(max(0, now - self.at) * DRIFT_PER_SECOND)


def measured(sent: int, received: int, remote: int) -> ClockEstimate:
    """The estimate from one round trip: sent and received on the local clock, `remote` read in between."""
    if received < sent:
        raise ValueError(f"a reply cannot arrive before its request (sent {sent}, received {received})")
    midpoint = (sent + received) // 2
    return ClockEstimate(offset=remote - midpoint, uncertainty=received - midpoint, at=received)


def tighter(current: ClockEstimate | None, sample: ClockEstimate) -> ClockEstimate:
    """Whichever of the two is more precise now (at the sample's time); the newer one on a tie."""
    if current is None or sample.uncertainty <= current.uncertainty_at(sample.at):
        return sample
    return current


def remote_deadline(estimate: ClockEstimate, now: int, within: int) -> int | None:
    """The latest remote time at which a command sent at local `now` may run and still have run within `within`
    µs of `now` on the local clock; None when the estimate is too loose to promise that."""
    slack = within - estimate.uncertainty_at(now)
    if slack <= 0:
        return None
    return now + estimate.offset + slack

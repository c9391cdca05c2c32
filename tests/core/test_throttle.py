from __future__ import annotations

from haltless.core.throttle import (
    MAX_FAILURES_PER_ACCOUNT,
    MAX_FAILURES_PER_ADDRESS,
    Limit,
    LoginAttempt,
    LoginThrottle,
    limits_of,
)


def _limits(email: str, client: str, per_key: int = 3) -> tuple[Limit, Limit]:
    return Limit(f"email:{email}", per_key), Limit(f"client:{client}", per_key)


def test_blocks_after_max_attempts_until_the_window_passes() -> None:
    throttle = LoginThrottle(window=60)
    for second in range(3):
        assert throttle.reserve(_limits("a", "1"), f"t{second}", now=second) == 0
    assert throttle.reserve(_limits("a", "1"), "t3", now=10) == 50  # the first attempt (t=0) leaves at t=60
    assert throttle.reserve(_limits("b", "1"), "t4", now=10) == 50  # same client, other email
    assert throttle.reserve(_limits("b", "2"), "t5", now=10) == 0
    assert throttle.reserve(_limits("a", "1"), "t6", now=60.5) == 0


def test_a_refused_attempt_counts_against_no_key() -> None:
    """A reservation refused by one key's limit must not use up the other key's allowance."""
    throttle = LoginThrottle(window=60)
    limits = (Limit("email:a", 1), Limit("client:1", 2))
    assert throttle.reserve(limits, "first", now=0) == 0
    assert throttle.reserve(limits, "refused", now=1) > 0  # email:a is full
    assert throttle.reserve((Limit("email:b", 1), Limit("client:1", 2)), "second", now=2) == 0


def test_reservations_count_before_the_outcome_is_known() -> None:
    """Attempts in flight count: the eleventh concurrent guess is refused before any has failed."""
    throttle = LoginThrottle(window=60)
    attempts = [LoginAttempt.of("a@example.com", "10.0.0.1") for _ in range(40)]
    waits = [throttle.reserve(limits_of(attempt), attempt.ticket, now=0) for attempt in attempts]
    assert waits.count(0) == MAX_FAILURES_PER_ACCOUNT
    assert all(wait == 60 for wait in waits[MAX_FAILURES_PER_ACCOUNT:])


def test_success_clears_the_account_and_returns_only_its_own_attempt_to_the_address() -> None:
    throttle = LoginThrottle(window=60)
    limits = _limits("a", "1", per_key=2)
    assert throttle.reserve(limits, "wrong", now=0) == 0
    assert throttle.reserve(limits, "right", now=1) == 0
    throttle.clear("email:a")
    throttle.release("client:1", "right")
    assert throttle.reserve(_limits("a", "9", per_key=2), "x", now=2) == 0
    # The client address keeps the real failure: one more attempt fills it.
    assert throttle.reserve(_limits("z", "1", per_key=2), "y", now=2) == 0
    assert throttle.reserve(_limits("w", "1", per_key=2), "z", now=2) > 0
    throttle.release("client:unknown", "nothing")  # taking back what was never reserved is harmless


def test_an_address_may_fail_far_more_often_than_an_account() -> None:
    assert MAX_FAILURES_PER_ADDRESS >= 10 * MAX_FAILURES_PER_ACCOUNT
    attempt = LoginAttempt.of("  Ops@Plant.Example ", "192.0.2.7")
    assert limits_of(attempt) == (
        Limit("email:ops@plant.example", MAX_FAILURES_PER_ACCOUNT),
        Limit("client:192.0.2.7", MAX_FAILURES_PER_ADDRESS),
    )


def test_the_oldest_keys_are_forgotten_past_the_cap() -> None:
    throttle = LoginThrottle(window=60, max_keys=4)
    for i in range(10):
        throttle.reserve((Limit(f"email:{i}", 1),), f"t{i}", now=0)
    assert throttle.reserve((Limit("email:0", 1),), "again", now=1) == 0
    assert throttle.reserve((Limit("email:9", 1),), "again", now=1) > 0

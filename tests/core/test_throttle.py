from __future__ import annotations

from haltless.core.throttle import LoginThrottle


def test_blocks_after_max_failures_until_the_window_passes() -> None:
    throttle = LoginThrottle(max_failures=3, window=60)
    keys = ("email:a", "client:1")
    for second in range(3):
        assert throttle.retry_after(keys, now=second) == 0
        throttle.failed(keys, now=second)
    assert throttle.retry_after(keys, now=10) == 50  # the first failure (t=0) leaves the window at t=60
    assert throttle.retry_after(("email:b", "client:1"), now=10) == 50  # same client, other email
    assert throttle.retry_after(("email:b", "client:2"), now=10) == 0
    assert throttle.retry_after(keys, now=60.5) == 0


def test_success_clears_only_the_given_keys() -> None:
    throttle = LoginThrottle(max_failures=2, window=60)
    throttle.failed(("email:a", "client:1"), now=0)
    throttle.failed(("email:a", "client:1"), now=1)
    throttle.succeeded(("email:a",))
    assert throttle.retry_after(("email:a", "client:9"), now=2) == 0
    assert throttle.retry_after(("email:z", "client:1"), now=2) > 0

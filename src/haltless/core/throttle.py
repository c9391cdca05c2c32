"""Failed-login throttling: a bounded sliding window of failures per key (an email, a client address)."""

from __future__ import annotations

from collections import OrderedDict, deque

# Ten wrong passwords a minute per email or per client address is plenty for a person and slow for a guesser.
MAX_FAILURES = 10
WINDOW_SECONDS = 60.0
# Keys remembered at most; the oldest are forgotten first, so a flood of random emails cannot grow memory.
MAX_KEYS = 10_000


class LoginThrottle:
    """Counts failures per key; `retry_after` says how long a key must wait (0: go ahead). Time comes in."""

    def __init__(self, max_failures: int = MAX_FAILURES, window: float = WINDOW_SECONDS) -> None:
        self._max = max_failures
        self._window = window
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, keys: tuple[str, ...], now: float) -> float:
        """Seconds until every key may try again."""
        wait = 0.0
        for key in keys:
            times = self._failures.get(key)
            if times is None:
                continue
            while times and times[0] <= now - self._window:
                times.popleft()
            if len(times) >= self._max:
                wait = max(wait, times[0] + self._window - now)
        return wait

    def failed(self, keys: tuple[str, ...], now: float) -> None:
        for key in keys:
            times = self._failures.setdefault(key, deque())
            self._failures.move_to_end(key)
            times.append(now)
            if len(times) > self._max:
                times.popleft()
        while len(self._failures) > MAX_KEYS:
            self._failures.popitem(last=False)

    def succeeded(self, keys: tuple[str, ...]) -> None:
        for key in keys:
            self._failures.pop(key, None)

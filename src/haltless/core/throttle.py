"""Failed-login throttling: a bounded sliding window of attempts per key (an account, a client address).

An attempt is *reserved* before the password is checked and counts as a failure from that moment; a login
that succeeds takes it back. Checking the count and adding to it in one step is what keeps concurrent guesses
inside the limit: checking before the (slow on purpose) password hash and counting after it let 40 guesses
sent at once all through.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field

# Ten wrong passwords a minute per account (email) is plenty for a person and slow for a guesser.
MAX_FAILURES_PER_ACCOUNT = 10
# Per client address far more: a plant often signs in from one NAT address (or through a proxy that
# HALTLESS_TRUSTED_PROXIES does not name), and one person's typos must not lock everyone else out. It still
# bounds a guesser who sprays passwords over many accounts from one address.
MAX_FAILURES_PER_ADDRESS = 100
WINDOW_SECONDS = 60.0
# Keys remembered at most; the oldest are forgotten first, so a flood of random emails cannot grow memory.
# (Entries per key are bounded by its limit, and every entry cost the server a password hash to make.)
MAX_KEYS = 10_000


def new_ticket() -> str:
    """A unique name for one attempt, so a success can take back exactly its own reservation."""
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class LoginAttempt:
    """One login attempt: the keys it counts against and its ticket."""

    # The account's key: cleared when a login to it succeeds.
    account: str
    # The client address's key: keeps its real failures when one login from it succeeds.
    address: str
    ticket: str = field(default_factory=new_ticket)

    @classmethod
    def of(cls, email: str, client_address: str) -> LoginAttempt:
        """The attempt to log in as `email` from `client_address` (emails compare case-insensitively)."""
        return cls(account=f"email:{email.strip().lower()}", address=f"client:{client_address}")


@dataclass(frozen=True, slots=True)
class Limit:
    """At most `max_attempts` unreturned attempts per window for `key`."""

    key: str
    max_attempts: int


def limits_of(
    attempt: LoginAttempt,
    *,
    per_account: int = MAX_FAILURES_PER_ACCOUNT,
    per_address: int = MAX_FAILURES_PER_ADDRESS,
) -> tuple[Limit, Limit]:
    """The two limits an attempt is checked against."""
    return Limit(attempt.account, per_account), Limit(attempt.address, per_address)


class LoginThrottle:
    """Attempts per key; `reserve` counts one or says how long to wait. Time comes in as an argument."""

    def __init__(self, window: float = WINDOW_SECONDS, *, max_keys: int = MAX_KEYS) -> None:
        self._window = window
        self._max_keys = max_keys
        self._attempts: OrderedDict[str, deque[tuple[float, str]]] = OrderedDict()

    def _live(self, key: str, now: float) -> deque[tuple[float, str]] | None:
        attempts = self._attempts.get(key)
        if attempts is not None:
            while attempts and attempts[0][0] <= now - self._window:
                attempts.popleft()
        return attempts

    def retry_after(self, limits: Sequence[Limit], now: float) -> float:
        """Seconds until every key is under its limit again (0: an attempt may be reserved now)."""
        wait = 0.0
        for limit in limits:
            attempts = self._live(limit.key, now)
            if attempts is not None and len(attempts) >= limit.max_attempts:
                # The oldest attempts leave the window first; waiting for the one that brings the count under.
                wait = max(wait, attempts[len(attempts) - limit.max_attempts][0] + self._window - now)
        return wait

    def reserve(self, limits: Sequence[Limit], ticket: str, now: float) -> float:
        """Count an attempt against every key and return 0; or, when a key is at its limit, count nothing
        and return the seconds to wait."""
        wait = self.retry_after(limits, now)
        if wait > 0:
            return wait
        for limit in limits:
            attempts = self._attempts.setdefault(limit.key, deque())
            self._attempts.move_to_end(limit.key)
            attempts.append((now, ticket))
        while len(self._attempts) > self._max_keys:
            self._attempts.popitem(last=False)
        return 0.0

    def release(self, key: str, ticket: str) -> None:
        """Take back one attempt (it succeeded); the key's other attempts stay."""
        attempts = self._attempts.get(key)
        if attempts is None:
            return
        for entry in attempts:
            if entry[1] == ticket:
                attempts.remove(entry)
                break
        if not attempts:
            del self._attempts[key]

    def clear(self, key: str) -> None:
        """Forget every attempt of `key`."""
        self._attempts.pop(key, None)

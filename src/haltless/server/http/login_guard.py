"""Login throttling for the login route: in this process's memory, or in Redis for every process.

Each attempt is reserved before the password is checked (core.throttle says why) and taken back when the login
succeeds. One process keeps core.throttle's sliding window in memory. Several processes (HALTLESS_BUS_URL on
Redis) keep the same window in Redis, a sorted set of attempt times per key, checked and added to by one Lua
script, so a guesser gets the same ten tries a minute however many processes and concurrent requests a load
balancer spreads them over. If Redis cannot be reached, the process's own window stands in rather than
refusing every login.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from typing import Protocol

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from haltless.bus import BusKind, bus_kind
from haltless.core.clock import Clock
from haltless.core.throttle import (
    MAX_FAILURES_PER_ACCOUNT,
    MAX_FAILURES_PER_ADDRESS,
    WINDOW_SECONDS,
    LoginAttempt,
    LoginThrottle,
    limits_of,
)
from haltless.server.clock import SystemClock
from haltless.settings import Settings

log = logging.getLogger("haltless.login")

# KEYS: one sorted set per key; ARGV: now, window, ticket, then each key's limit. Atomic in Redis, so two
# processes (or two requests) cannot both see a count under the limit and both add to it.
_RESERVE = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local wait = 0
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local limit = tonumber(ARGV[3 + i])
  local count = redis.call('ZCARD', key)
  if count >= limit then
    local entry = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
    wait = math.max(wait, tonumber(entry[2]) + window - now)
  end
end
if wait > 0 then
  return tostring(wait)
end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[3])
  redis.call('EXPIRE', key, math.ceil(window))
end
return '0'
"""


class LoginGuard(Protocol):
    """Login attempts per key (an account, a client address)."""

    async def reserve(self, attempt: LoginAttempt) -> float:
        """0: go ahead, the attempt counts as a failure until `succeeded`; else the seconds to wait."""
        ...

    async def succeeded(self, attempt: LoginAttempt) -> None:
        """The password was right: forget the account's failures, take this attempt back from the address."""
        ...

    async def close(self) -> None: ...


class LocalLoginGuard:
    """This process's memory (core.throttle)."""

    def __init__(
        self,
        *,
        per_account: int = MAX_FAILURES_PER_ACCOUNT,
        per_address: int = MAX_FAILURES_PER_ADDRESS,
        window: float = WINDOW_SECONDS,
    ) -> None:
        self._per_account = per_account
        self._per_address = per_address
        self._throttle = LoginThrottle(window)

    async def reserve(self, attempt: LoginAttempt) -> float:
        limits = limits_of(attempt, per_account=self._per_account, per_address=self._per_address)
        return self._throttle.reserve(limits, attempt.ticket, time.monotonic())

    async def succeeded(self, attempt: LoginAttempt) -> None:
        self._throttle.clear(attempt.account)
        self._throttle.release(attempt.address, attempt.ticket)

    async def close(self) -> None:
        return None


# Seconds a login waits for Redis before counting in this process alone.
REDIS_TIMEOUT = 0.5


class RedisLoginGuard:
    """The same window in Redis, shared by every process using the same URL and prefix (wall-clock time)."""

    def __init__(
        self,
        url: str,
        prefix: str,
        *,
        per_account: int = MAX_FAILURES_PER_ACCOUNT,
        per_address: int = MAX_FAILURES_PER_ADDRESS,
        window: float = WINDOW_SECONDS,
        clock: Clock | None = None,
    ) -> None:
        self._clock = clock or SystemClock()
        # A hung Redis must not hold every login: one short attempt, then this process's own count (redis-py would
        # otherwise retry ten times, 2 s each).
        self._redis: Redis = Redis.from_url(
            url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT, retry=Retry(NoBackoff(), 0)
        )
        self._reserve = self._redis.register_script(_RESERVE)
        self._prefix = f"{prefix}:login-failures:"
        self._per_account = per_account
        self._per_address = per_address
        self._window = window
        self._fallback = LocalLoginGuard(per_account=per_account, per_address=per_address, window=window)

    def _name(self, key: str) -> str:
        return self._prefix + key

    async def reserve(self, attempt: LoginAttempt) -> float:
        limits = limits_of(attempt, per_account=self._per_account, per_address=self._per_address)
        keys = [self._name(limit.key) for limit in limits]
        args: list[str | float] = [
            self._clock.now_us() / 1_000_000,
            self._window,
            attempt.ticket,
            *(limit.max_attempts for limit in limits),
        ]
        try:
            wait = await self._reserve(keys=keys, args=args)
        except RedisError as exc:
            log.warning("login throttle: Redis unreachable (%s); counting in this process only", exc)
            return await self._fallback.reserve(attempt)
        return float(wait)

    async def succeeded(self, attempt: LoginAttempt) -> None:
        with contextlib.suppress(RedisError):  # else the records expire on their own within the window
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.delete(self._name(attempt.account))
                pipe.zrem(self._name(attempt.address), attempt.ticket)
                await pipe.execute()
        await self._fallback.succeeded(attempt)

    async def close(self) -> None:
        await self._redis.aclose()


def create_login_guard(settings: Settings, clock: Clock | None = None) -> LoginGuard:
    """Redis when the processes share a Redis bus, memory otherwise."""
    if bus_kind(settings.bus_url) is BusKind.REDIS:
        return RedisLoginGuard(settings.bus_url, settings.bus_prefix, clock=clock)
    return LocalLoginGuard()


def wait_seconds(wait: float) -> int:
    """A Retry-After value: whole seconds, at least 1."""
    return max(1, math.ceil(wait))


def waiting_time(seconds: int) -> str:
    """How long to wait, as a person reads it: `45 s`, `3 min`, `2 h` (rounded up)."""
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{math.ceil(seconds / 60)} min"
    return f"{math.ceil(seconds / 3600)} h"

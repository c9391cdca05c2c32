"""Failed-login throttling for the login route: in this process's memory, or in Redis for every process.

One process keeps core.throttle's sliding window in memory. Several processes (HALTLESS_BUS_URL on Redis)
keep the same window in Redis, a sorted set of failure times per key, so a guesser gets the same ten tries
a minute however many processes a load balancer spreads them over. If Redis cannot be reached, the
process's own window stands in rather than refusing every login.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import uuid
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from haltless.core.throttle import MAX_FAILURES, WINDOW_SECONDS, LoginThrottle
from haltless.settings import Settings

log = logging.getLogger("haltless.login")


class LoginGuard(Protocol):
    """Failure counts per key (an email, a client address)."""

    async def retry_after(self, keys: tuple[str, ...]) -> float:
        """Seconds until every key may try again (0: go ahead)."""
        ...

    async def failed(self, keys: tuple[str, ...]) -> None: ...

    async def succeeded(self, keys: tuple[str, ...]) -> None: ...

    async def close(self) -> None: ...


class LocalLoginGuard:
    """This process's memory (core.throttle)."""

    def __init__(self, throttle: LoginThrottle | None = None) -> None:
        self._throttle = throttle or LoginThrottle()

    async def retry_after(self, keys: tuple[str, ...]) -> float:
        return self._throttle.retry_after(keys, time.monotonic())

    async def failed(self, keys: tuple[str, ...]) -> None:
        self._throttle.failed(keys, time.monotonic())

    async def succeeded(self, keys: tuple[str, ...]) -> None:
        self._throttle.succeeded(keys)

    async def close(self) -> None:
        return None


class RedisLoginGuard:
    """The same window in Redis, shared by every process using the same URL and prefix (wall-clock time)."""

    def __init__(
        self, url: str, prefix: str, *, max_failures: int = MAX_FAILURES, window: float = WINDOW_SECONDS
    ) -> None:
        self._redis: Redis = Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self._prefix = f"{prefix}:login-failures:"
        self._max = max_failures
        self._window = window
        self._fallback = LocalLoginGuard(LoginThrottle(max_failures, window))

    def _name(self, key: str) -> str:
        return self._prefix + key

    async def retry_after(self, keys: tuple[str, ...]) -> float:
        now = time.time()
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.zremrangebyscore(self._name(key), "-inf", now - self._window)
                    pipe.zrange(self._name(key), 0, 0, withscores=True)
                    pipe.zcard(self._name(key))
                results = await pipe.execute()
        except RedisError as exc:
            log.warning("login throttle: Redis unreachable (%s); counting in this process only", exc)
            return await self._fallback.retry_after(keys)
        wait = 0.0
        for i in range(len(keys)):
            oldest, count = results[3 * i + 1], results[3 * i + 2]
            if count >= self._max and oldest:
                wait = max(wait, float(oldest[0][1]) + self._window - now)
        return wait

    async def failed(self, keys: tuple[str, ...]) -> None:
        now = time.time()
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    name = self._name(key)
                    pipe.zadd(name, {f"{now}:{uuid.uuid4().hex}": now})
                    pipe.zremrangebyrank(name, 0, -(self._max + 1))  # keep the newest `max` failures
                    pipe.expire(name, math.ceil(self._window))
                await pipe.execute()
        except RedisError as exc:
            log.warning("login throttle: Redis unreachable (%s); counting in this process only", exc)
            await self._fallback.failed(keys)

    async def succeeded(self, keys: tuple[str, ...]) -> None:
        with contextlib.suppress(RedisError):  # else the record expires on its own within the window
            await self._redis.delete(*(self._name(key) for key in keys))
        await self._fallback.succeeded(keys)

    async def close(self) -> None:
        await self._redis.aclose()


def create_login_guard(settings: Settings) -> LoginGuard:
    """Redis when the processes share a Redis bus, memory otherwise."""
    if settings.bus_url.startswith(("redis://", "rediss://", "unix://")):
        return RedisLoginGuard(settings.bus_url, settings.bus_prefix)
    return LocalLoginGuard()

"""Failed-login throttling shared through Redis: every process counts the same failures; no Redis, no lockout."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from haltless.server.login_guard import LocalLoginGuard, RedisLoginGuard, create_login_guard
from haltless.settings import Settings
from tests.scale.test_scale_out import REDIS_PORT, _need_services

KEYS = ("email:a@example.com", "client:10.0.0.1")


@pytest.fixture
async def guards() -> AsyncIterator[Callable[[], RedisLoginGuard]]:
    """Guards on the local Redis under one fresh prefix: each stands for one server process."""
    _need_services()
    prefix = f"test-{uuid.uuid4().hex[:10]}"
    made: list[RedisLoginGuard] = []

    def make() -> RedisLoginGuard:
        guard = RedisLoginGuard(f"redis://127.0.0.1:{REDIS_PORT}/0", prefix, max_failures=3, window=60)
        made.append(guard)
        return guard

    yield make
    for guard in made:
        await guard.succeeded(KEYS)
        await guard.close()


async def test_failures_counted_in_one_process_lock_out_in_another(guards: Callable[[], RedisLoginGuard]) -> None:
    first, second = guards(), guards()
    await first.failed(KEYS)
    await second.failed(KEYS)
    assert await first.retry_after(KEYS) == 0
    await first.failed(KEYS[1:])  # the client address reaches 3; the email stays at 2
    wait = await second.retry_after(KEYS)
    assert 59 < wait <= 60
    assert await second.retry_after(KEYS[:1]) == 0
    await second.succeeded(KEYS[1:])
    assert await first.retry_after(KEYS) == 0


async def test_only_the_newest_failures_are_kept(guards: Callable[[], RedisLoginGuard]) -> None:
    guard = guards()
    for _ in range(20):
        await guard.failed(KEYS[:1])
    assert 59 < await guard.retry_after(KEYS[:1]) <= 60
    assert await guard._redis.zcard(guard._name(KEYS[0])) == 3
    assert 0 < await guard._redis.ttl(guard._name(KEYS[0])) <= 60  # the record leaves with its window


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_without_redis_the_process_counts_alone() -> None:
    guard = RedisLoginGuard(f"redis://127.0.0.1:{_closed_port()}/0", "test", max_failures=2, window=60)
    try:
        assert await guard.retry_after(KEYS) == 0
        await guard.failed(KEYS)
        await guard.failed(KEYS)
        assert 59 < await guard.retry_after(KEYS) <= 60
        await guard.succeeded(KEYS)
        assert await guard.retry_after(KEYS) == 0
    finally:
        await guard.close()


def test_the_guard_follows_the_bus() -> None:
    assert isinstance(create_login_guard(Settings(bus_url="memory://")), LocalLoginGuard)
    assert isinstance(create_login_guard(Settings(bus_url="redis://127.0.0.1:6379/0")), RedisLoginGuard)

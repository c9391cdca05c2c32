"""Login throttling shared through Redis: every process counts the same attempts; no Redis, no lockout."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from haltless.core.throttle import LoginAttempt
from haltless.server.http.login_guard import LocalLoginGuard, RedisLoginGuard, create_login_guard
from haltless.settings import Settings
from tests.scale.test_scale_out import REDIS_PORT, _need_services


def _attempt(email: str = "a@example.com", client: str = "10.0.0.1") -> LoginAttempt:
    return LoginAttempt.of(email, client)


@pytest.fixture
async def guards() -> AsyncIterator[Callable[..., RedisLoginGuard]]:
    """Guards on the local Redis under one fresh prefix: each stands for one server process."""
    _need_services()
    prefix = f"test-{uuid.uuid4().hex[:10]}"
    made: list[RedisLoginGuard] = []

    def make(per_account: int = 3, per_address: int = 5) -> RedisLoginGuard:
        guard = RedisLoginGuard(
            f"redis://127.0.0.1:{REDIS_PORT}/0", prefix, per_account=per_account, per_address=per_address, window=60
        )
        made.append(guard)
        return guard

    yield make
    for guard in made:
        keys = await guard._redis.keys(f"{prefix}:*")
        if keys:
            await guard._redis.delete(*keys)
        await guard.close()


async def test_attempts_reserved_in_one_process_lock_out_in_another(guards: Callable[..., RedisLoginGuard]) -> None:
    first, second = guards(), guards()
    assert await first.reserve(_attempt()) == 0
    assert await second.reserve(_attempt()) == 0
    assert await first.reserve(_attempt()) == 0
    wait = await second.reserve(_attempt())  # the account has its three
    assert 59 < wait <= 60
    assert await second.reserve(_attempt("b@example.com")) == 0  # the address has four of five


async def test_concurrent_reservations_never_exceed_the_limit(guards: Callable[..., RedisLoginGuard]) -> None:
    """40 reservations at once through four 'processes': exactly the account's limit gets through."""
    processes = [guards(per_account=10, per_address=100) for _ in range(4)]
    waits = await asyncio.gather(*(processes[i % 4].reserve(_attempt()) for i in range(40)))
    assert sum(1 for wait in waits if wait == 0) == 10


async def test_success_clears_the_account_but_not_the_address(guards: Callable[..., RedisLoginGuard]) -> None:
    guard = guards(per_account=3, per_address=10)
    for _ in range(3):
        assert await guard.reserve(_attempt()) == 0  # three failures from 10.0.0.1
    right = _attempt()
    assert await guard.reserve(right) > 0  # the account is full
    await guard.succeeded(_attempt(client="10.9.9.9"))  # the owner logs in from elsewhere: the account clears
    assert await guard.reserve(right) == 0
    await guard.succeeded(right)
    # A success takes back its own attempt only: the address keeps its three real failures.
    assert await guard._redis.zcard(guard._name(right.address)) == 3
    assert 0 < await guard._redis.ttl(guard._name(right.address)) <= 60  # the record leaves with its window
    assert await guard._redis.exists(guard._name(right.account)) == 0


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_without_redis_the_process_counts_alone() -> None:
    guard = RedisLoginGuard(f"redis://127.0.0.1:{_closed_port()}/0", "test", per_account=2, window=60)
    try:
        assert await guard.reserve(_attempt()) == 0
        assert await guard.reserve(_attempt()) == 0
        assert 59 < await guard.reserve(_attempt()) <= 60
        await guard.succeeded(_attempt())
        assert await guard.reserve(_attempt()) == 0
    finally:
        await guard.close()


async def test_the_local_guard_reserves_the_same_way() -> None:
    guard = LocalLoginGuard(per_account=2, per_address=3)
    assert await guard.reserve(_attempt()) == 0
    assert await guard.reserve(_attempt()) == 0
    assert await guard.reserve(_attempt()) > 0
    assert await guard.reserve(_attempt("b@example.com")) == 0
    assert await guard.reserve(_attempt("c@example.com")) > 0  # the address has its three


def test_the_guard_follows_the_bus() -> None:
    assert isinstance(create_login_guard(Settings(bus_url="memory://")), LocalLoginGuard)
    assert isinstance(create_login_guard(Settings(bus_url="redis://127.0.0.1:6379/0")), RedisLoginGuard)

"""Login throttling through the real server: concurrent guesses stay inside the limit (memory and Redis), an
address may fail far more often than an account, and X-Forwarded-For counts only from a trusted proxy."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from haltless.admin import create_tenant
from haltless.server.http.login_guard import LocalLoginGuard
from tests.conftest import PASSWORD, RunningServer
from tests.scale.test_scale_out import REDIS_HOST, REDIS_PORT, _need_services

LOGIN = "/api/v1/auth/login"
# The documented limit per account (README: ten failed logins a minute); core.throttle.ACCOUNT_LIMIT.
ACCOUNT_LIMIT = 10


async def _admin(running: RunningServer) -> str:
    email = f"admin-{uuid.uuid4().hex[:8]}@example.com"
    await create_tenant(running.settings, name="Plant", email=email, password=PASSWORD)
    return email


@pytest.mark.parametrize("bus", ["memory", "redis"])
async def test_concurrent_wrong_passwords_get_at_most_the_limit_of_401s(
    server_factory: Callable[..., RunningServer], bus: str
) -> None:
    """40 wrong passwords for one account sent at once: the limit's worth of 401s, then 429s."""
    overrides: dict[str, Any] = {}
    if bus == "redis":
        _need_services()
        overrides = {"bus_url": f"redis://{REDIS_HOST}:{REDIS_PORT}/0", "bus_prefix": f"test-{uuid.uuid4().hex[:10]}"}
    running = server_factory(**overrides)
    email = await _admin(running)
    async with httpx.AsyncClient(base_url=running.base_url, timeout=60) as http:
        responses = await asyncio.gather(
            *(http.post(LOGIN, json={"email": email, "password": f"wrong-{i}"}) for i in range(40))
        )
        statuses = Counter(response.status_code for response in responses)
        assert statuses[401] <= ACCOUNT_LIMIT, statuses
        assert statuses[401] + statuses[429] == 40, statuses
        # Locked out, even with the right password, until the window passes.
        blocked = await http.post(LOGIN, json={"email": email, "password": PASSWORD})
    assert blocked.status_code == 429
    wait = int(blocked.headers["retry-after"])
    assert 0 < wait <= 60
    # The answer says how long to wait, not just "later".
    assert blocked.json()["detail"] == f"too many failed logins; try again in {wait} s"


async def test_failures_for_other_accounts_from_one_address_do_not_lock_out_the_rest(
    server_factory: Callable[..., RunningServer],
) -> None:
    """Ten typos by ten colleagues behind one NAT address leave the eleventh able to log in."""
    running = server_factory()
    email = await _admin(running)
    async with httpx.AsyncClient(base_url=running.base_url, timeout=60) as http:
        for i in range(ACCOUNT_LIMIT + 2):
            wrong = await http.post(LOGIN, json={"email": f"colleague-{i}@example.com", "password": "wrong-password"})
            assert wrong.status_code == 401
        ok = await http.post(LOGIN, json={"email": email, "password": PASSWORD})
    assert ok.status_code == 200, ok.text


async def _statuses(running: RunningServer, forwarded_for: list[str]) -> list[int]:
    """A wrong login per entry (each for another account), each claiming to be forwarded for that address."""
    async with httpx.AsyncClient(base_url=running.base_url, timeout=60) as http:
        statuses = []
        for address in forwarded_for:
            body = {"email": f"nobody-{uuid.uuid4().hex[:8]}@example.com", "password": "wrong-password"}
            response = await http.post(LOGIN, json=body, headers={"X-Forwarded-For": address})
            statuses.append(response.status_code)
        return statuses


@pytest.mark.parametrize("trusted", [["127.0.0.1"], ["10.0.0.0/8", "::1"]])
async def test_forwarded_for_names_the_client_only_behind_a_trusted_proxy(
    server_factory: Callable[..., RunningServer], trusted: list[str]
) -> None:
    running = server_factory(trusted_proxies=trusted)
    # The address limit lowered to 3 (a limit, patched like a clock) so a few requests reach it.
    running.state.login_guard = LocalLoginGuard(per_account=100, per_address=3)
    spoofer, other = "203.0.113.1", "203.0.113.2"
    statuses = await _statuses(running, [spoofer] * 3 + [spoofer, other, f"{other}, 127.0.0.1"])
    if "127.0.0.1" in trusted:
        # Our test client's connection comes from 127.0.0.1, a trusted proxy: each forwarded address counts
        # on its own (the last one went through a second trusted hop).
        assert statuses == [401, 401, 401, 429, 401, 401]
    else:
        # Not a trusted proxy: the header is ignored, every request counts against 127.0.0.1.
        assert statuses == [401, 401, 401, 429, 429, 429]


async def test_no_forwarded_for_is_believed_by_default(server_factory: Callable[..., RunningServer]) -> None:
    running = server_factory()
    running.state.login_guard = LocalLoginGuard(per_account=100, per_address=2)
    statuses = await _statuses(running, ["203.0.113.1", "203.0.113.2", "203.0.113.3"])
    assert statuses == [401, 401, 429]


async def test_concurrent_wrong_current_passwords_are_throttled_like_logins(server: RunningServer) -> None:
    """POST /auth/password with a stolen token: 30 guesses of the current password at once get the account's
    limit of 403s, then 429s (reserved before the slow hash, as at login)."""
    email = await _admin(server)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as http:
        login = await http.post(LOGIN, json={"email": email, "password": PASSWORD})
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        responses = await asyncio.gather(
            *(
                http.post(
                    "/api/v1/auth/password",
                    json={"current_password": f"wrong-{i}", "new_password": "new-password-1"},
                    headers=headers,
                )
                for i in range(30)
            )
        )
    statuses = Counter(response.status_code for response in responses)
    assert statuses == Counter({403: ACCOUNT_LIMIT, 429: 30 - ACCOUNT_LIMIT}), statuses

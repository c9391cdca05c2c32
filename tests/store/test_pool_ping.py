"""PostgreSQL's pool pings a connection before use only when it sat idle: a dropped one is then replaced without
failing a request, and the busy path saves the ping's three round trips (store/database.py `_ping_after_idle`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from haltless.store.database import create_engine
from tests.conftest import _admin_execute

Engines = Callable[[float], AsyncEngine]


@pytest.fixture
async def engines(database_url: str | None) -> AsyncIterator[Engines]:
    """Engines on the test's PostgreSQL database, each with the given idle time before a ping."""
    if database_url is None:
        pytest.skip("the ping on checkout is PostgreSQL's (SQLite's file does not go away)")
    made: list[AsyncEngine] = []

    def make(ping_after_idle: float) -> AsyncEngine:
        made.append(create_engine(database_url, ping_after_idle=ping_after_idle))
        return made[-1]

    yield make
    for engine in made:
        await engine.dispose()


async def _backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def _terminate(pid: int) -> None:
    """What a database restart or an idle-session timeout does to a pooled connection."""
    await _admin_execute(f"SELECT pg_terminate_backend({pid})")


async def test_a_connection_dropped_while_idle_is_replaced_before_use(engines: Engines) -> None:
    engine = engines(0.0)  # idle for 0 s or more: every checkout pings
    dropped = await _backend_pid(engine)
    await _terminate(dropped)
    assert await _backend_pid(engine) != dropped  # no error: the ping failed, the pool made a new connection


async def test_a_connection_back_in_the_pool_moments_ago_is_used_without_a_ping(engines: Engines) -> None:
    """The trade: one returned within the idle time is trusted. If it was dropped meanwhile, the request that
    takes it fails as one in flight would, and the pool is renewed for the next."""
    engine = engines(3600.0)
    dropped = await _backend_pid(engine)
    await _terminate(dropped)
    with pytest.raises(DBAPIError) as failed:
        await _backend_pid(engine)
    assert failed.value.connection_invalidated
    assert await _backend_pid(engine) != dropped


@pytest.mark.parametrize(("idle_seconds", "pings"), [(3600.0, 0), (0.0, 5)])
async def test_only_a_connection_idle_for_the_set_time_is_pinged(
    engines: Engines, monkeypatch: pytest.MonkeyPatch, idle_seconds: float, pings: int
) -> None:
    engine = engines(idle_seconds)
    pid = await _backend_pid(engine)
    sent: list[Any] = []
    do_ping = engine.dialect.do_ping

    def counted(dbapi_connection: Any) -> bool:
        sent.append(dbapi_connection)
        return do_ping(dbapi_connection)

    monkeypatch.setattr(engine.dialect, "do_ping", counted)
    for _ in range(5):
        assert await _backend_pid(engine) == pid
    assert len(sent) == pings

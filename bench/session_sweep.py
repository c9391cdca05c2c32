"""Revoked-session sweep: what one pass costs a server process with 5,000 open dashboard sockets.

Every server process sweeps its sockets once a second (server/ws/session_sweep.py): one query per 1,000 distinct
users with sockets open, then a comparison per user. Measured in-process on real databases (a SQLite file, and
PostgreSQL when reachable at HALTLESS_TEST_POSTGRES_DSN) with 5,000 connections registered in a real hub; the
sweep touches a socket only to close it, so no network is involved and nothing is closed here. Two shapes:
5,000 sockets of 5,000 users (the worst case) and of 50 users (wallboards sharing a few accounts).

Reported per pass: median wall time, and the CPU time the process spent (event loop and the database driver's
thread), which at one pass a second is also the share of one core. Also: the per-request user check of
server/http/user_lookup.py answered from memory, which every request made with an access token pays.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import asyncpg
from sqlalchemy import insert

from haltless.core.models import Role
from haltless.server.http.user_lookup import UserStatusLookup
from haltless.server.ws.hub import DashboardConnection, DashboardHub
from haltless.server.ws.session_sweep import RevokedSessionSweeper
from haltless.store.database import create_engine, migrate
from haltless.store.tables import tenants, users

SOCKETS = 5_000
PASSES = 30
WARMUP = 3
LOOKUPS = 200_000
PG_ADMIN = os.environ.get("HALTLESS_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


class _Transport:
    """Stands in for a socket's frame sink: the sweep never writes to one it keeps open."""

    def write(self, frames: bytes) -> None:
        return None

    def buffered(self) -> int:
        return 0

    def on_close(self, callback: Callable[[], None]) -> None:
        return None

    def close(self, code: int, reason: str, timeout: float) -> None:
        return None


async def _users(url: str, count: int) -> list[str]:
    engine = create_engine(url)
    await migrate(engine)
    tenant_id = str(uuid.uuid4())
    ids = [str(uuid.uuid4()) for _ in range(count)]
    async with engine.begin() as conn:
        await conn.execute(insert(tenants).values(id=tenant_id, name="bench", created_at=0))
        rows = [
            {
                "id": user_id,
                "tenant_id": tenant_id,
                "email": f"user{i}@bench.local",
                "password_hash": "x",
                "role": Role.VIEWER.value,
                "created_at": 0,
            }
            for i, user_id in enumerate(ids)
        ]
        await conn.execute(insert(users), rows)
    await engine.dispose()
    return ids


async def _measure(url: str, distinct_users: int) -> tuple[float, float]:
    """(median wall ms, median CPU ms) of one sweep over SOCKETS sockets of `distinct_users` users."""
    user_ids = await _users(url, distinct_users)
    engine = create_engine(url)
    try:
        hub = DashboardHub(max_pending=0)
        for i in range(SOCKETS):
            hub.add(
                DashboardConnection(
                    "tenant",
                    _no_send,
                    limit_bytes=1 << 20,
                    frames=_Transport(),
                    subject_id=user_ids[i % distinct_users],
                )
            )
        sweeper = RevokedSessionSweeper(hub, UserStatusLookup(engine))
        walls, cpus = [], []
        for index in range(WARMUP + PASSES):
            wall, cpu = time.perf_counter(), time.process_time()
            assert await sweeper.sweep() == 0
            if index >= WARMUP:
                walls.append(time.perf_counter() - wall)
                cpus.append(time.process_time() - cpu)
        assert hub.connection_count() == SOCKETS
        hub.close_all()
        return statistics.median(walls) * 1000, statistics.median(cpus) * 1000
    finally:
        await engine.dispose()


async def _no_send(_text: str) -> None:
    raise AssertionError("not used on the frame path")


async def _lookup_cost(url: str) -> float:
    """Microseconds per per-request user check answered from memory."""
    (user_id,) = await _users(url, 1)
    engine = create_engine(url)
    try:
        lookup = UserStatusLookup(engine, clock=lambda: 0.0)  # a frozen clock: always the remembered answer
        await lookup.status(user_id)
        started = time.perf_counter()
        for _ in range(LOOKUPS):
            await lookup.status(user_id)
        return (time.perf_counter() - started) / LOOKUPS * 1e6
    finally:
        await engine.dispose()


async def _postgres_url() -> tuple[str, str] | None:
    """A fresh PostgreSQL database (url, name), or None when PostgreSQL is not reachable."""
    name = f"haltless_bench_{uuid.uuid4().hex[:12]}"
    try:
        admin = await asyncpg.connect(PG_ADMIN, timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return None
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    rest = PG_ADMIN.split("://", 1)[1].rsplit("/", 1)[0]
    return f"postgresql+asyncpg://{rest}/{name}", name


async def _drop(name: str) -> None:
    admin = await asyncpg.connect(PG_ADMIN, timeout=5)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def _run() -> list[str]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="haltless-bench-sweep-") as tmp:
        backends: list[tuple[str, Callable[[str], str]]] = [
            ("SQLite", lambda tag: f"sqlite+aiosqlite:///{Path(tmp) / tag}.db"),
        ]
        postgres = await _postgres_url()
        if postgres is not None:
            backends.append(("PostgreSQL", lambda _tag: postgres[0]))
        try:
            for backend, url_for in backends:
                for distinct in (SOCKETS, 50):
                    # (PostgreSQL: one database for both shapes; the second's users join the first's.)
                    url = url_for(f"sweep-{distinct}")
                    wall, cpu = await _measure(url, distinct)
                    rows.append(
                        f"| {backend} | {SOCKETS:,} sockets of {distinct:,} users | {wall:.1f} ms | {cpu:.1f} ms "
                        f"| {cpu / 10:.2f} % |"
                    )
            lookup = await _lookup_cost(url_for("lookup"))
        finally:
            if postgres is not None:
                await _drop(postgres[1])
    return [
        *rows,
        "",
        f"Per-request user check answered from memory (server/http/user_lookup.py): {lookup:.2f} µs.",
    ]


def run() -> str:
    """Measure; returns the markdown table."""
    load = os.getloadavg()[0]
    rows = asyncio.run(_run())
    return "\n".join(
        [
            f"Load average (1 min) {load:.1f}. One sweep pass, median of {PASSES} (after {WARMUP} warm-up passes); "
            "CPU time includes the database driver's thread; at one pass a second, CPU ms ÷ 10 is % of one core.",
            "",
            "| database | open sockets | wall per pass | CPU per pass | share of one core |",
            "|---|---|---:|---:|---:|",
            *rows,
        ]
    )


if __name__ == "__main__":
    print(run())

"""The machine's PostgreSQL for the benches: reachability, and a throwaway database per use.

The maintenance database is `HALTLESS_BENCH_POSTGRES_DSN` (default: the one the test suite uses,
`HALTLESS_TEST_POSTGRES_DSN`, else postgres@127.0.0.1:5432 with trust auth). Every database made here is
dropped again, even when the bench fails.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg

ADMIN_DSN = os.environ.get(
    "HALTLESS_BENCH_POSTGRES_DSN",
    os.environ.get("HALTLESS_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"),
)


async def _admin(*statements: str) -> None:
    # CREATE/DROP DATABASE cannot run inside a transaction; asyncpg runs plain statements in autocommit.
    conn = await asyncpg.connect(ADMIN_DSN, timeout=5)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def unreachable() -> str | None:
    """Why PostgreSQL cannot be used, or None when it can."""
    try:
        asyncio.run(_admin("SELECT 1"))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return f"PostgreSQL not reachable at {ADMIN_DSN.split('@')[-1]} ({type(exc).__name__}: {exc})"
    return None


def dsn(database: str) -> str:
    """A plain `postgresql://` DSN of `database` on the admin DSN's server (for asyncpg)."""
    return f"{ADMIN_DSN.rsplit('/', 1)[0]}/{database}"


def sqlalchemy_url(database: str) -> str:
    """The same database as the server's `HALTLESS_DATABASE_URL` (asyncpg driver)."""
    return "postgresql+asyncpg://" + dsn(database).split("://", 1)[1]


@contextmanager
def throwaway_database() -> Iterator[str]:
    """A fresh, empty database (its name); dropped on the way out. The server's settings are left as they are."""
    name = f"haltless_bench_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(f"CREATE DATABASE {name}"))
    try:
        yield name
    finally:
        asyncio.run(_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))

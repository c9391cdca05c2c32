"""The engine's transaction helpers on SQLite files: `begin_write` holds the write lock from its first read."""

from __future__ import annotations

import asyncio
from pathlib import Path

from haltless.store.database import begin_write, create_engine, migrate


async def test_begin_write_makes_a_second_writer_wait_before_it_reads(tmp_path: Path) -> None:
    # Two engines on one file stand for two server processes. A transaction that has only read so far
    # must already hold the lock, so the other cannot commit between its duplicate check and its insert.
    url = f"sqlite+aiosqlite:///{tmp_path / 'haltless.db'}"
    first, second = create_engine(url), create_engine(url)
    await migrate(first)
    holding, release = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with first.begin() as conn:
            await begin_write(conn)
            holding.set()
            await release.wait()

    async def wait_for_it() -> None:
        async with second.begin() as conn:
            await begin_write(conn)

    try:
        holder = asyncio.create_task(hold())
        await holding.wait()
        waiter = asyncio.create_task(wait_for_it())
        await asyncio.sleep(0.3)
        assert not waiter.done()  # blocked on the first transaction's lock
        release.set()
        await holder
        await asyncio.wait_for(waiter, 10)
    finally:
        await first.dispose()
        await second.dispose()

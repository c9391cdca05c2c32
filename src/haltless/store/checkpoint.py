"""SQLite WAL checkpoints in the background, so a writer never waits for the disk to sync.

In WAL mode every commit appends pages to `haltless.db-wal`; a checkpoint copies them back into the database
file and syncs both to disk. SQLite runs it inside the commit that crosses `wal_autocheckpoint` pages, so
with the default (1,000 pages) about one ingest batch in ten waited 25-30 ms for two fsyncs on this machine
(bench M4; the other commits take under 1 ms). Here a task asks for a PASSIVE checkpoint on its own pooled
connection (its own thread) a few times a second after something was committed: it never blocks writers or
readers, and the syncs overlap with the next batches' work instead of stalling them.

A PASSIVE checkpoint cannot restart the log while writes keep arriving, so the writers' own checkpoint
stays as the backstop, at WAL_BACKSTOP_PAGES: when it runs, the pages are mostly copied already and the
log starts over from its beginning. The log file therefore stays near that size whatever the load.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger("haltless.checkpoint")

# wal_autocheckpoint of every connection: 10,000 pages of 4 KiB (~40 MiB) before a writer checkpoints itself.
WAL_BACKSTOP_PAGES = 10_000
# Seconds between background checkpoints while commits arrive: short enough that the backstop finds little
# left to copy, long enough that each checkpoint's two fsyncs are shared by several commits.
CHECKPOINT_INTERVAL = 0.25


@dataclass(slots=True)
class CheckpointStats:
    """What the checkpointer did since start; `frames_copied` is SQLite's count after the last run (frames of
    the current log already in the database file), not a sum: SQLite reports it that way."""

    runs: int = 0
    frames_copied: int = 0
    busy: int = 0
    failures: int = 0


class WalCheckpointer:
    """A background task that checkpoints an SQLite engine's WAL after commits (no-op on other databases)."""

    def __init__(self, engine: AsyncEngine, *, interval: float = CHECKPOINT_INTERVAL) -> None:
        self._engine = engine
        self._interval = interval
        self._dirty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.stats = CheckpointStats()

    @property
    def enabled(self) -> bool:
        return self._engine.dialect.name == "sqlite"

    def start(self) -> None:
        """Listen for commits and checkpoint after them until stopped."""
        if not self.enabled or self._task is not None:
            return
        event.listen(self._engine.sync_engine, "commit", self._on_commit)
        self._task = asyncio.create_task(self._run(), name="haltless-wal-checkpoint")

    async def stop(self) -> None:
        """Stop listening and cancel the task (a checkpoint in flight finishes in its thread)."""
        if self._task is None:
            return
        event.remove(self._engine.sync_engine, "commit", self._on_commit)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    def _on_commit(self, _conn: Any) -> None:
        # Runs on the event loop's thread (SQLAlchemy's async layer drives the commit from there): one flag set.
        self._dirty.set()

    async def checkpoint(self) -> tuple[int, int, int]:
        """One PASSIVE checkpoint now: (busy, frames in the log, frames copied), as SQLite reports them."""
        async with self._engine.connect() as conn:
            result = await conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
            busy, logged, copied = (int(column) for column in result.one())
        self.stats.runs += 1
        self.stats.busy += busy
        self.stats.frames_copied = max(copied, 0)
        return busy, logged, copied

    async def _run(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                await self.checkpoint()
            except Exception:
                # The writers' own backstop checkpoint still bounds the log; try again after the next commit.
                self.stats.failures += 1
                log.exception("background WAL checkpoint failed")
            await asyncio.sleep(self._interval)

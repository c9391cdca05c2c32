"""SQLite WAL checkpoints in the background, so a writer never waits for the disk to sync.

In WAL mode every commit appends pages to `haltless.db-wal`; a checkpoint copies them back into the database
file and syncs both to disk. SQLite runs it inside the commit that crosses `wal_autocheckpoint` pages, so
with the default (1,000 pages) about one ingest batch in ten waited 25-30 ms for two fsyncs on this machine
(bench M4; the other commits take under 1 ms). Here a task asks for a PASSIVE checkpoint on its own pooled
connection (its own thread) a few times a second after something was committed: it never blocks writers or
readers, and the syncs overlap with the next batches' work instead of stalling them.

A PASSIVE checkpoint cannot restart the log while writes keep arriving, so the writers' own checkpoint
stays as the backstop, at WAL_BACKSTOP_PAGES: when it runs, the pages are mostly copied already and the
log starts over from its beginning. A writer's checkpoint that finds the background one busy is skipped, though,
and under non-stop writes the two can keep meeting; so once the log has passed the backstop the background task
asks for a RESTART checkpoint instead (it waits briefly for the writer of the moment, then makes the next writer
start the log over). The log file therefore stays near that size whatever the load.
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
# How long a RESTART checkpoint waits for the writer or a reader of the moment before giving up until the next
# run (milliseconds, the connection's busy timeout while it runs): a long export must not stall ingestion.
RESTART_WAIT_MS = 200


@dataclass(slots=True)
class CheckpointStats:
    """What the checkpointer did since start.

    SQLite reports, after each checkpoint, how many frames the current log holds and how many of them are in the
    database file by now; both count from the log's last restart, so they are kept as the last run's figures,
    never summed. `runs_that_copied` counts the runs after which some frames were in the database file.
    """

    runs: int = 0
    restarts: int = 0
    runs_that_copied: int = 0
    last_frames_logged: int = 0
    last_frames_copied: int = 0
    busy: int = 0
    failures: int = 0


class WalCheckpointer:
    """A background task that checkpoints an SQLite engine's WAL after commits (no-op on other databases)."""

    def __init__(
        self, engine: AsyncEngine, *, interval: float = CHECKPOINT_INTERVAL, restart_pages: int = WAL_BACKSTOP_PAGES
    ) -> None:
        self._engine = engine
        self._interval = interval
        self._restart_pages = restart_pages
        self._restart_due = False
        self._dirty = asyncio.Event()
        # Commits seen so far; caught up when a checkpoint that began after the latest of them has finished.
        self._commits = 0
        self._caught_up = asyncio.Event()
        self._caught_up.set()
        self._task: asyncio.Task[None] | None = None
        self.stats = CheckpointStats()

    @property
    def enabled(self) -> bool:
        return self._engine.dialect.name == "sqlite"

    @property
    def caught_up(self) -> bool:
        """True when a checkpoint has run since the last commit (the task then waits for the next commit)."""
        return self._caught_up.is_set()

    async def wait_caught_up(self) -> None:
        """Until a checkpoint that began after the latest commit has finished."""
        await self._caught_up.wait()

    def start(self) -> None:
        """Listen for commits and checkpoint after them until stopped."""
        if not self.enabled or self._task is not None:
            return
        event.listen(self._engine.sync_engine, "commit", self._on_commit)
        event.listen(self._engine.sync_engine, "checkin", self._on_checkin)
        self._task = asyncio.create_task(self._run(), name="haltless-wal-checkpoint")

    async def stop(self) -> None:
        """Stop listening and cancel the task (a checkpoint in flight finishes in its thread)."""
        if self._task is None:
            return
        event.remove(self._engine.sync_engine, "commit", self._on_commit)
        event.remove(self._engine.sync_engine, "checkin", self._on_checkin)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    # SQLAlchemy's "commit" event fires before the commit reaches SQLite (the async driver then hands the loop
    # back while it waits), so a checkpoint started from it could run before the commit lands and leave the
    # commit's frames unsynced until the next one. The connection is marked instead, and the checkpoint is asked
    # for when the connection goes back to the pool, after its transaction is over. Both run on the loop's thread.
    _COMMITTED = "haltless.wal_committed"

    def _on_commit(self, conn: Any) -> None:
        conn.info[self._COMMITTED] = True

    def _on_checkin(self, _dbapi_connection: Any, record: Any) -> None:
        if record is None or not record.info.pop(self._COMMITTED, False):
            return
        self._commits += 1
        self._caught_up.clear()
        self._dirty.set()

    async def checkpoint(self) -> tuple[int, int, int]:
        """One checkpoint now: (busy, frames in the log, frames copied), as SQLite reports them.

        PASSIVE, unless the last one found the log past `restart_pages`: then RESTART, so the next writer starts
        the log over (a PASSIVE one cannot make it), waiting at most RESTART_WAIT_MS for other connections.
        """
        restart = self._restart_due
        async with self._engine.connect() as conn:
            if restart:
                waited = (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar_one()
                await conn.exec_driver_sql(f"PRAGMA busy_timeout={RESTART_WAIT_MS}")
                try:
                    row = (await conn.exec_driver_sql("PRAGMA wal_checkpoint(RESTART)")).one()
                finally:
                    await conn.exec_driver_sql(f"PRAGMA busy_timeout={int(waited)}")
            else:
                row = (await conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")).one()
            busy, logged, copied = (int(column) for column in row)
        self.stats.runs += 1
        if restart and not busy:
            self.stats.restarts += 1
        # A finished RESTART leaves the log to start over at the next write, though SQLite still reports its
        # length; only a later run that finds the log long again asks for another.
        self._restart_due = logged >= self._restart_pages and not (restart and not busy)
        self.stats.busy += busy
        self.stats.last_frames_logged = max(logged, 0)
        self.stats.last_frames_copied = max(copied, 0)
        if copied > 0:
            self.stats.runs_that_copied += 1
        return busy, logged, copied

    async def _run(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            seen = self._commits
            try:
                await self.checkpoint()
            except Exception:
                # The writers' own backstop checkpoint still bounds the log; try again after the next commit.
                self.stats.failures += 1
                log.exception("background WAL checkpoint failed")
            else:
                if seen == self._commits:
                    self._caught_up.set()
            await asyncio.sleep(self._interval)

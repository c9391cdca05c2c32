"""The on-disk store-and-forward buffer: SQLite in WAL mode, one writer thread, group commit, a row cap.

A reading is in the buffer once `append` returns: the transaction is committed and the WAL synced
(`synchronous=FULL`), so a crash or power cut after that point cannot lose it. Readings leave the
buffer only when the server has answered for them (`remove`) or when the cap pushes them out.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal, TypeVar

from haltless.agent.captured import CapturedReading

OverflowPolicy = Literal["drop_oldest", "drop_newest"]
_T = TypeVar("_T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS readings (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    reading_id TEXT NOT NULL UNIQUE,
    machine_id TEXT NOT NULL,
    metric_name TEXT NOT NULL,
    value REAL NOT NULL,
    unit TEXT NOT NULL,
    ts_us INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class BufferUnusable(Exception):
    """The buffer file cannot be used (locked by another agent, unreadable, not a buffer)."""


@dataclass(frozen=True, slots=True)
class BufferedReading:
    """A reading with its position in the buffer."""

    seq: int
    reading: CapturedReading


class ReadingBuffer:
    """Durable FIFO of captured readings; every call runs on one dedicated thread."""

    def __init__(self, path: Path, max_rows: int, overflow: OverflowPolicy) -> None:
        self.path = path
        self.max_rows = max_rows
        self.overflow = overflow
        self.dropped = 0  # dropped by the cap since this process opened the buffer
        self._count = 0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agent-buffer")
        self._conn: sqlite3.Connection | None = None
        self._lock_file: IO[bytes] | None = None
        self._pending: list[tuple[Sequence[CapturedReading], asyncio.Future[None]]] = []
        self._committer: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, path: Path, max_rows: int, overflow: OverflowPolicy) -> ReadingBuffer:
        """Open (creating if needed) the buffer file; BufferUnusable when another agent holds it."""
        buffer = cls(path, max_rows, overflow)
        try:
            await buffer._call(buffer._open_sync)
        except BaseException:
            await buffer.close()
            raise
        return buffer

    def __len__(self) -> int:
        return self._count

    async def append(self, readings: Sequence[CapturedReading]) -> None:
        """Store readings durably; concurrent callers share one commit. Known reading ids are ignored."""
        if not readings:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((readings, done))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_pending())
        await done

    async def oldest(self, limit: int) -> list[BufferedReading]:
        """Up to `limit` readings, oldest first; they stay in the buffer until removed."""
        return await self._call(lambda: self._oldest_sync(limit))

    async def remove(self, seqs: Sequence[int]) -> None:
        """Forget readings the server has answered for."""
        if seqs:
            await self._call(lambda: self._remove_sync(seqs))

    async def dropped_total(self) -> int:
        """Readings the cap has dropped over the buffer file's whole life."""
        return await self._call(self._dropped_total_sync)

    async def close(self) -> None:
        """Wait for pending commits, then release the file."""
        if self._committer is not None:
            with contextlib.suppress(Exception):
                await self._committer
        with contextlib.suppress(Exception):
            await self._call(self._close_sync)
        self._executor.shutdown(wait=True)

    async def _call(self, function: Callable[[], _T]) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function)

    async def _commit_pending(self) -> None:
        while self._pending:
            group, self._pending = self._pending, []
            readings = [reading for batch, _ in group for reading in batch]
            try:
                await self._call(functools.partial(self._append_sync, readings))
            except Exception as exc:
                for _, done in group:
                    if not done.done():
                        done.set_exception(exc)
                continue
            for _, done in group:
                if not done.done():
                    done.set_result(None)

    def _open_sync(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_file = open(f"{self.path}.lock", "wb")  # noqa: SIM115 - held for the buffer's lifetime
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.close()
            raise BufferUnusable(f"{self.path} is in use by another agent process") from None
        self._lock_file = lock_file
        try:
            conn = sqlite3.connect(self.path, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            # FULL: the WAL is synced at every commit, so an appended reading survives a power cut too.
            conn.execute("PRAGMA synchronous=FULL")
            conn.executescript(_SCHEMA)
            (self._count,) = conn.execute("SELECT COUNT(*) FROM readings").fetchone()
        except sqlite3.DatabaseError as exc:
            raise BufferUnusable(f"{self.path}: cannot use it as a buffer ({exc})") from None
        self._conn = conn

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise BufferUnusable("the buffer is closed")
        return self._conn

    def _append_sync(self, readings: Sequence[CapturedReading]) -> None:
        conn = self._db()
        rows = [(r.reading_id, r.machine_id, r.metric_name, r.value, r.unit, r.ts_us) for r in readings]
        with _transaction(conn):
            before = conn.total_changes
            conn.executemany(
                "INSERT OR IGNORE INTO readings (reading_id, machine_id, metric_name, value, unit, ts_us)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
            count = self._count + conn.total_changes - before
            excess = count - self.max_rows
            if excess > 0:
                # drop_oldest keeps the freshest picture of the plant; drop_newest keeps the earliest history.
                order = "ASC" if self.overflow == "drop_oldest" else "DESC"
                conn.execute(
                    f"DELETE FROM readings WHERE seq IN (SELECT seq FROM readings ORDER BY seq {order} LIMIT ?)",  # noqa: S608
                    (excess,),
                )
                conn.execute(
                    "INSERT INTO counters (name, value) VALUES ('dropped', ?)"
                    " ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
                    (excess,),
                )
                count = self.max_rows
        self._count = count
        if excess > 0:
            self.dropped += excess

    def _oldest_sync(self, limit: int) -> list[BufferedReading]:
        rows = self._db().execute(
            "SELECT seq, reading_id, machine_id, metric_name, value, unit, ts_us FROM readings ORDER BY seq LIMIT ?",
            (limit,),
        )
        return [BufferedReading(row[0], CapturedReading(*row[1:])) for row in rows]

    def _remove_sync(self, seqs: Sequence[int]) -> None:
        conn = self._db()
        with _transaction(conn):
            before = conn.total_changes
            conn.executemany("DELETE FROM readings WHERE seq = ?", [(seq,) for seq in seqs])
            self._count -= conn.total_changes - before

    def _dropped_total_sync(self) -> int:
        row = self._db().execute("SELECT value FROM counters WHERE name = 'dropped'").fetchone()
        return int(row[0]) if row else 0

    def _close_sync(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")

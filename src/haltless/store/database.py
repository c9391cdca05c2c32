"""The database engine: creation (SQLite pragmas, PostgreSQL pool), and Alembic migrations applied at start-up."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import time
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import PoolResetState

from haltless.store.checkpoint import WAL_BACKSTOP_PAGES

_MIGRATIONS = Path(__file__).parent / "migrations"
log = logging.getLogger("haltless.store")

# The data dir and the SQLite files hold password hashes and every tenant's data: for the owner only.
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
# The database file and the files SQLite keeps beside it (WAL, shared memory, rollback journal).
_SQLITE_SUFFIXES = ("", "-wal", "-shm", "-journal")

# Connections per server process: ingest holds one per batch, history and exports one per page, the
# monitor and retention one each; overflow absorbs bursts. Several processes share PostgreSQL's
# max_connections (100 by default), so the steady pool stays small.
PG_POOL_SIZE = 10
PG_MAX_OVERFLOW = 10
# Seconds a request waits for a free pooled connection before failing instead of hanging.
PG_POOL_TIMEOUT = 30.0
# Recycle connections now and then so a server restart or failover behind a proxy is not seen as errors.
PG_POOL_RECYCLE = 1800
# A pooled connection idle for longer than this is pinged before use (see `_ping_after_idle`).
PG_PING_AFTER_IDLE = 1.0
# Every SQLite connection's settings (bench/ingest.py gives its raw-sqlite3 baseline the same ones).
SQLITE_PRAGMAS = (
    # WAL lets dashboards read while ingestion writes; NORMAL is durable across crashes of the process
    # (a power loss may lose the commits since the last checkpoint, which store/checkpoint.py runs within
    # a fraction of a second of any commit; the file is never corrupted).
    "journal_mode=WAL",
    "synchronous=NORMAL",
    "foreign_keys=ON",
    "busy_timeout=30000",
    # Checkpoints run in the background (store/checkpoint.py); a writer runs one only past this size.
    f"wal_autocheckpoint={WAL_BACKSTOP_PAGES}",
)
# Any fixed 64-bit number; every Haltless process migrating the same database takes this lock first.
_MIGRATION_LOCK_ID = 0x4841_4C54_4C45_5353


def normalize_url(url: str) -> str:
    """The URL with the async driver SQLAlchemy needs (`postgresql://` → `postgresql+asyncpg://`)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    if parsed.drivername == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False)
    return url


def _tighten(path: Path, mode: int) -> None:
    """Take away every permission bit of `path` outside `mode` (never adds one)."""
    current = stat.S_IMODE(path.stat().st_mode)
    if current & ~mode:
        path.chmod(current & mode)
        log.info("%s was mode %o; now %o (owner only)", path, current, current & mode)


def make_private_dir(path: Path) -> None:
    """Create the directory (0700) if it is missing, and take group and other access from an existing one."""
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    _tighten(path, PRIVATE_DIR_MODE)


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL; None for other databases, in-memory ones and `file:` URIs."""
    parsed = make_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def make_sqlite_files_private(path: Path) -> None:
    """Create the database file 0600 before SQLite does, and take group and other access from existing ones.

    SQLite creates its -wal and -shm files with the database file's mode, so they follow.
    """
    if not path.parent.exists():
        make_private_dir(path.parent)
    # Only a file that does not exist yet is opened here. Closing any descriptor of a database file drops every
    # POSIX lock this process holds on it, so opening and closing one that a connection of this process is using
    # (a server and `haltless demo` or a test creating a tenant in the same process) lets another process write
    # under it and corrupts the database. An existing file is only chmod-ed, by path.
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        _tighten(path, PRIVATE_FILE_MODE)
    else:
        os.close(fd)
    for suffix in _SQLITE_SUFFIXES:
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            _tighten(companion, PRIVATE_FILE_MODE)


def create_engine(url: str, *, ping_after_idle: float = PG_PING_AFTER_IDLE) -> AsyncEngine:
    """An async engine; SQLite files get WAL, foreign keys and a busy timeout on every connection, and are
    made the owner's only (`make_sqlite_files_private`). PostgreSQL connections that sat in the pool for
    `ping_after_idle` seconds or more are pinged before use (`_ping_after_idle`)."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        path = sqlite_file(url)
        if path is not None:
            make_sqlite_files_private(path)
        # The pool's own rollback-on-return is replaced by `_rollback_if_open` below.
        engine = create_async_engine(url, connect_args={"timeout": 30}, pool_reset_on_return=None)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            for pragma in SQLITE_PRAGMAS:
                cursor.execute(f"PRAGMA {pragma}")
            cursor.close()

        @event.listens_for(engine.sync_engine, "reset")
        def _rollback_if_open(dbapi_connection: Any, record: Any, reset_state: PoolResetState) -> None:
            # Hot path (bench M4): SQLAlchemy rolls back every connection returned without a transaction of its
            # own, which is every change once it committed; through aiosqlite each rollback is a round trip to
            # the connection's thread (~45 µs of CPU, and a wake-up of that thread). SQLite itself says whether
            # anything is open (`in_transaction` is read without that round trip): roll back only then.
            if reset_state.asyncio_safe and record.driver_connection.in_transaction:
                dbapi_connection.rollback()

        return engine
    engine = create_async_engine(
        url,
        pool_size=PG_POOL_SIZE,
        max_overflow=PG_MAX_OVERFLOW,
        pool_timeout=PG_POOL_TIMEOUT,
        pool_recycle=PG_POOL_RECYCLE,
    )
    _ping_after_idle(engine, ping_after_idle)
    return engine


def _ping_after_idle(engine: AsyncEngine, idle_seconds: float) -> None:
    """A connection dropped while it sat in the pool (a database restart, an idle timeout, a proxy) is
    replaced on checkout instead of failing a request: the pool pings it first, and on failure drops every
    pooled connection as SQLAlchemy's `pool_pre_ping` would. Unlike `pool_pre_ping`, only connections idle
    for `idle_seconds` or more are pinged. Hot path (bench M4 on PostgreSQL): the ping is three round trips
    (SQLAlchemy's asyncpg adapter wraps it in BEGIN and ROLLBACK) and 0.2-0.4 ms of the event loop a batch. A
    connection back in the pool less than a second ago was working then; if the database went away within
    that second, the request that takes it fails as one in flight would, and the pool is renewed for the
    next (tests/store/test_pool_ping.py)."""
    pool_events = engine.sync_engine

    @event.listens_for(pool_events, "connect")
    def _new(_dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(pool_events, "checkin")
    def _returned(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(pool_events, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get(_IDLE_SINCE, float("-inf")) < idle_seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:  # any failure: the connection is of no use, and the database may have restarted
            raise InvalidatePoolError(f"pooled connection failed its ping: {error!r}") from error


_IDLE_SINCE = "haltless_idle_since"


async def begin_write(conn: AsyncConnection) -> None:
    """Take SQLite's write lock at the start of the caller's transaction (no-op elsewhere).

    The driver opens a transaction only at the first INSERT/UPDATE, so the reads a writer makes first
    (which reading ids are stored already?) would run outside it, and another process could commit the same
    ids in between. BEGIN IMMEDIATE makes the checks and the writes one step; other writers wait for it.
    """
    if conn.dialect.name != "sqlite":
        return
    if not conn.in_transaction():
        raise RuntimeError("begin_write needs a transaction")
    driver: Any = (await conn.get_raw_connection()).driver_connection
    if not driver.in_transaction:
        await driver.execute("BEGIN IMMEDIATE")


def _upgrade(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        # Several server processes may start at once; the transaction-scoped lock makes the others wait
        # and then find the schema at head, instead of racing to create the same tables.
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _at_head(connection: Connection) -> bool:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    return MigrationContext.configure(connection).get_current_revision() == head


# How long a start-up check waits for the database before it says it cannot reach it.
PROBE_TIMEOUT = 5.0


async def database_problem(url: str) -> str | None:
    """Why the database at `url` cannot be used (one line, password hidden), or None when it answers."""
    shown = make_url(url).render_as_string(hide_password=True)
    engine = create_engine(url)
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            async with engine.connect() as conn:
                await conn.exec_driver_sql("SELECT 1")
    except TimeoutError:
        return f"no answer from {shown} within {PROBE_TIMEOUT:g} s; is the database running and reachable?"
    except Exception as exc:
        reason = (
            str(getattr(exc, "orig", None) or exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        )
        return f"cannot connect to {shown}: {reason}; start the database or fix the URL"
    finally:
        await engine.dispose()
    return None


async def migrate(engine: AsyncEngine) -> None:
    """Bring the schema to the newest Alembic revision."""
    async with engine.connect() as connection:
        # Nothing to do (every start but the first after an upgrade): skip the pragmas and the whole-database
        # foreign-key check below, which reads every row of every table.
        if await connection.run_sync(_at_head):
            return
        await connection.rollback()
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # SQLite changes a table's constraints by rebuilding it (Alembic batch mode), and with foreign keys
            # on, dropping the old table would cascade deletes into the tables that reference it. The pragma
            # only takes effect outside a transaction: set it before the migrations' transaction begins.
            await connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            await connection.commit()
        try:
            async with connection.begin():
                await connection.run_sync(_upgrade)
                if sqlite and (await connection.exec_driver_sql("PRAGMA foreign_key_check")).first() is not None:
                    raise RuntimeError("a migration left rows that break a foreign key; nothing was changed")
        finally:
            if sqlite:
                await connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                await connection.commit()

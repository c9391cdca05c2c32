"""The data dir is the owner's only (0700) and so are the SQLite files and the JWT secret in it (0600)."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import httpx

from haltless.admin import create_tenant
from haltless.settings import Settings
from tests.conftest import EVENT_TIMEOUT, PASSWORD, login, start_server


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def _write_through_the_server(settings: Settings) -> None:
    """Start a server on `settings`, write through it (so SQLite has its -wal and -shm files), and check modes
    while it runs (SQLite removes -wal and -shm when the last connection closes)."""
    running = start_server(settings)
    try:
        await create_tenant(settings, name="Plant", email="admin@example.com", password=PASSWORD)
        pair = await login(running.base_url, "admin@example.com")
        auth = {"Authorization": f"Bearer {pair['access_token']}"}
        async with httpx.AsyncClient(base_url=running.base_url, headers=auth, timeout=EVENT_TIMEOUT) as http:
            assert (await http.post("/api/v1/machines", json={"name": "Press"})).status_code == 201
        data = settings.data_dir
        assert _mode(data) == 0o700
        for name in ("haltless.db", "haltless.db-wal", "haltless.db-shm", "jwt_secret", "secrets_key"):
            assert _mode(data / name) == 0o600, name
    finally:
        running.stop()


async def test_new_data_dir_and_database_are_owner_only(tmp_path: Path) -> None:
    await _write_through_the_server(Settings(data_dir=tmp_path / "data", jwt_secret=None))


async def test_existing_open_files_are_tightened_at_start_up(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    db = sqlite3.connect(data / "haltless.db")
    db.execute("PRAGMA journal_mode=WAL")
    db.close()
    (data / "haltless.db").chmod(0o644)
    # As a crash leaves them: an empty WAL and shared-memory file, made under a looser umask.
    for leftover in ("haltless.db-wal", "haltless.db-shm"):
        (data / leftover).write_bytes(b"")
        (data / leftover).chmod(0o664)
    await _write_through_the_server(Settings(data_dir=data, jwt_secret=None))

"""Helpers for agent tests: the real Mosquitto broker, API keys, config files, the server's stored readings."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import RunningServer, Tenant, query_database

MQTT_HOST = "127.0.0.1"
MQTT_PORT = 1883
AGENT = [sys.executable, "-m", "haltless", "agent"]


@pytest.fixture
def mqtt_broker() -> tuple[str, int]:
    """The broker's address; skips (or fails under HALTLESS_TEST_REQUIRE_SERVICES=1) when it is not up."""
    try:
        socket.create_connection((MQTT_HOST, MQTT_PORT), timeout=1).close()
    except OSError as exc:
        reason = f"Mosquitto is not reachable at {MQTT_HOST}:{MQTT_PORT} ({exc})"
        if os.environ.get("HALTLESS_TEST_REQUIRE_SERVICES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return MQTT_HOST, MQTT_PORT


@pytest.fixture
def topic_prefix() -> str:
    """A prefix no other test publishes under."""
    return f"haltless-test/{uuid.uuid4().hex}"


async def create_api_key(tenant: Tenant) -> str:
    """A fresh ingest key of the tenant."""
    created = await tenant.http.post("/api/v1/api-keys", json={"name": "agent under test"})
    assert created.status_code == 201, created.text
    key: str = created.json()["key"]
    return key


def write_config(
    tmp_path: Path,
    server_url: str,
    api_key: str,
    body: str = "",
    *,
    name: str = "agent.toml",
    uplink: str = "",
    buffer: str = "",
) -> Path:
    """An agent config with fast retries; `body` adds sources and tables, `uplink`/`buffer` extra keys."""
    path = tmp_path / name
    path.write_text(
        f'server_url = "{server_url}"\n'
        f'api_key = "{api_key}"\n'
        "status_interval = 0.5\n"
        "[buffer]\n"
        'path = "buffer.db"\n'
        f"{buffer}\n"
        "[uplink]\n"
        "backoff_initial = 0.05\n"
        "backoff_max = 0.5\n"
        "send_interval = 0.05\n"
        "once_attempts = 3\n"
        f"{uplink}\n"
        f"{body}\n"
    )
    return path


def stored_readings(server: RunningServer) -> list[tuple[str, float]]:
    """(reading_id, value) of every reading in the server's database."""
    return [(row[0], row[1]) for row in query_database(server.settings, "SELECT reading_id, value FROM readings")]


def buffered_count(buffer_path: Path) -> int:
    """Rows in an agent's buffer file (a second reader is fine in WAL mode)."""
    if not buffer_path.exists():
        return 0
    with sqlite3.connect(buffer_path) as conn:
        try:
            return int(conn.execute("SELECT COUNT(*) FROM readings").fetchone()[0])
        except sqlite3.OperationalError as exc:
            # The agent creates the file a moment before its table; polling may land in between.
            if "no such table" in str(exc):
                return 0
            raise


def wait_until(condition: Callable[[], bool], what: str, seconds: float = 60.0) -> None:
    """Poll with a deadline where there is no event to await (another process, another database)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.05)


def agent_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("HALTLESS_")}


def run_agent_once(config: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`haltless agent --config … --once` as a user runs it."""
    return subprocess.run(
        [*AGENT, "--config", str(config), "--once"],
        env=agent_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def agent_processes() -> Iterator[list[subprocess.Popen[str]]]:
    """Agent subprocesses started by a test; killed at the end whatever happened."""
    processes: list[subprocess.Popen[str]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def write_csv(path: Path, machine_id: str, count: int, start: int = 0) -> list[str]:
    """A CSV of `count` readings with explicit reading ids; returns the ids in file order."""
    ids = [f"csv-{uuid.uuid4().hex}-{index}" for index in range(count)]
    lines = ["machine_id,metric_name,value,unit,timestamp,reading_id"]
    lines += [
        f"{machine_id},temperature,{start + index},celsius,2026-01-01T00:00:{index % 60:02d}Z,{reading_id}"
        for index, reading_id in enumerate(ids)
    ]
    path.write_text("\n".join(lines) + "\n")
    return ids

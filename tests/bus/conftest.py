"""Real Redis for the bus tests: the shared one on 127.0.0.1:6379 under a key prefix of the test's own, and a
private `redis-server` on a free port that a test may kill, restart or freeze (SIGSTOP) without disturbing others."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import redis

from tests.conftest import EVENT_TIMEOUT, free_port

SHARED_REDIS = "redis://127.0.0.1:6379/0"
REQUIRE = os.environ.get("HALTLESS_TEST_REQUIRE_SERVICES") == "1"


def _reachable(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _unavailable(reason: str) -> None:
    if REQUIRE:
        pytest.fail(reason + " (HALTLESS_TEST_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


@dataclass
class SharedRedis:
    """The shared Redis, with a prefix that no other test uses."""

    url: str
    prefix: str

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)


@pytest.fixture
def shared_redis() -> Iterator[SharedRedis]:
    """The shared Redis under a fresh HALTLESS_BUS_PREFIX; the test's keys are deleted afterwards."""
    if not _reachable(6379):
        _unavailable("Redis not reachable on 127.0.0.1:6379")
    shared = SharedRedis(SHARED_REDIS, f"test-bus-{uuid.uuid4().hex[:10]}")
    yield shared
    with shared.client() as client:
        keys = list(client.scan_iter(match=f"{shared.prefix}:*"))
        if keys:
            client.delete(*keys)


@dataclass
class PrivateRedis:
    """A `redis-server` of this test's own (no persistence: a restart loses every key)."""

    binary: str
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + EVENT_TIMEOUT
        while not _reachable(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("redis-server did not come up")
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL: Redis and every key in it are gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def restart(self) -> None:
        self.kill()
        self.start()

    def freeze(self) -> None:
        """SIGSTOP: connections stay open and nothing is answered (a hung Redis, not a refusing one)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    """A started private Redis, killed at the end of the test (frozen or not)."""
    binary = shutil.which("redis-server")
    if binary is None:
        _unavailable("redis-server not installed")
    assert binary is not None
    private = PrivateRedis(binary)
    private.start()
    yield private
    if private.process is not None and private.process.poll() is None:
        private.thaw()
    private.kill()

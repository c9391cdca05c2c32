"""No query string reaches a log line, whatever characters it holds (server/logs.py)."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from haltless.server.logs import RedactQueryStrings
from tests.conftest import EVENT_TIMEOUT, free_port

# Each one ended the redaction early once, or could: a quote, a double quote (uvicorn writes %22), a second "?".
HOSTILE_QUERIES = ("a='&token=SECRET1", "a=%22&token=SECRET2", "x=?&token=SECRET3", "token=SECRET4'")


def _record(msg: str, *args: object) -> logging.LogRecord:
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, msg, args, None)
    RedactQueryStrings().filter(record)
    return record


@pytest.mark.parametrize("query", HOSTILE_QUERIES)
def test_access_line_argument_loses_its_whole_query(query: str) -> None:
    record = _record('%s - "%s %s HTTP/%s" %d', "127.0.0.1:1", "GET", f"/api/v1/health?{query}", "1.1", 200)
    assert record.getMessage() == '127.0.0.1:1 - "GET /api/v1/health?[redacted] HTTP/1.1" 200'


@pytest.mark.parametrize("query", HOSTILE_QUERIES)
def test_formatted_message_loses_its_whole_query(query: str) -> None:
    record = _record(f'127.0.0.1:1 - "GET /api/v1/health?{query} HTTP/1.1" 200')
    assert record.getMessage() == '127.0.0.1:1 - "GET /api/v1/health?[redacted] HTTP/1.1" 200'


def _raw_request(port: int, target: str, extra: str = "Connection: close\r\n") -> bytes:
    """Send a request line exactly as given (no client re-encodes it) and return the start of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=EVENT_TIMEOUT) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: test\r\n{extra}\r\n".encode())
        return sock.recv(4096)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    """`haltless serve` at info level: uvicorn's own logging config, as production runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HALTLESS_")}
    env["HALTLESS_DATA_DIR"] = str(tmp_path / "data")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "haltless", "serve", "--port", str(port), "--log-level", "info"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 2 * EVENT_TIMEOUT
        while True:
            assert process.poll() is None, "server exited early"
            assert time.monotonic() < deadline, "server did not come up"
            try:
                httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        yield port, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stderr is not None:
            process.stderr.close()


def test_http_and_websocket_log_lines_never_show_a_query(served: tuple[int, subprocess.Popen[str]]) -> None:
    port, process = served
    upgrade = (
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    )
    for query in HOSTILE_QUERIES:
        assert _raw_request(port, f"/api/v1/health?{query}").startswith(b"HTTP/1.1 200")
        assert _raw_request(port, f"/api/v1/ws/dashboard?{query}", upgrade).startswith(b"HTTP/1.1 101")
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=EVENT_TIMEOUT)
    assert stderr.count('"GET /api/v1/health?[redacted] HTTP/1.1" 200') == len(HOSTILE_QUERIES)
    assert stderr.count('"WebSocket /api/v1/ws/dashboard?[redacted]" [accepted]') == len(HOSTILE_QUERIES)
    assert "SECRET" not in stderr

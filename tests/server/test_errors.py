"""The one place errors become answers: a bug is a JSON 500 that leaves the keep-alive connection open."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.responses import StreamingResponse

from haltless.server.http.errors import install_error_handlers
from tests.conftest import EVENT_TIMEOUT, free_port


def _buggy_app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/bug")
    async def bug() -> None:
        raise RuntimeError("a bug")

    @app.get("/ok")
    async def ok() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/broken-stream")
    async def broken_stream() -> StreamingResponse:
        async def rows() -> AsyncIterator[str]:
            yield "header\r\n"
            raise RuntimeError("a bug halfway")

        return StreamingResponse(rows(), media_type="text/csv")

    return app


@pytest.fixture
def port() -> Iterator[int]:
    chosen = free_port()
    server = uvicorn.Server(uvicorn.Config(_buggy_app(), host="127.0.0.1", port=chosen, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    started = threading.Event()
    for _ in range(int(EVENT_TIMEOUT / 0.02)):
        if server.started:
            started.set()
            break
        threading.Event().wait(0.02)
    assert started.is_set(), "server did not start"
    yield chosen
    server.should_exit = True
    thread.join(timeout=15)


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str) -> tuple[int, bytes]:
    """One request on an open connection; the status and the body of its answer (Content-Length framed)."""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), EVENT_TIMEOUT)
    status = int(head.split(b" ", 2)[1])
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    return status, await asyncio.wait_for(reader.readexactly(length), EVENT_TIMEOUT)


async def test_a_500_keeps_the_connection_for_the_next_request(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        assert await _exchange(reader, writer, "/bug") == (500, b'{"detail":"internal server error"}')
        assert await _exchange(reader, writer, "/ok") == (200, b'{"status":"ok"}')
    finally:
        writer.close()


async def test_a_stream_that_fails_halfway_is_cut_off(port: int) -> None:
    """Once the answer has begun, closing the connection is the only way to say the body is incomplete."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET /broken-stream HTTP/1.1\r\nHost: test\r\n\r\n")
        await writer.drain()
        received = await asyncio.wait_for(reader.read(), EVENT_TIMEOUT)  # until the server closes
        assert received.startswith(b"HTTP/1.1 200")
        assert b"header" in received
        assert not received.endswith(b"0\r\n\r\n")  # no closing chunk: the client knows the body is cut short
    finally:
        writer.close()

"""Baseline B (and the minimal relay): a dashboard server made only of the `websockets` library.

`python -m bench.baseline` reads one JSON job on stdin: ports and the token → tenant table. Sockets follow
our handshake (the token is the first message; a heartbeat confirms it) on `ws_port`. Readings arrive the
way they reach our server, as `POST` batches of the same JSON body, on a bare asyncio HTTP/1.1 listener on
`http_port`: each reading is encoded once into the guide's sensor_update shape and passed to
`websockets.broadcast()` for the tenant's sockets. No validation, no storage, no rules: that is the point of
a baseline. uvloop, `compression=None`, and no keepalive pings (our server's pings are off in the bench too).
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from typing import Any, cast

import orjson
import uvloop
from websockets.asyncio.connection import broadcast
from websockets.asyncio.server import ServerConnection, serve

from haltless.core import wire
from haltless.core.timefmt import format_micros, parse_timestamp, to_micros


def now_micros() -> int:
    return time.time_ns() // 1000


class Relay:
    """Tenants' sockets and the POST listener that broadcasts to them."""

    def __init__(self, tokens: dict[str, str]) -> None:
        self.tokens = tokens
        self.sockets: dict[str, set[ServerConnection]] = {}

    async def handler(self, ws: ServerConnection) -> None:
        try:
            first = await asyncio.wait_for(ws.recv(), 10)
        except TimeoutError:
            await ws.close(4002, "authentication timeout")
            return
        tenant = self.tokens.get(first if isinstance(first, str) else "")
        if tenant is None:
            await ws.close(4001, "invalid token")
            return
        await ws.send(wire.heartbeat(now_micros()))
        members = self.sockets.setdefault(tenant, set())
        members.add(ws)
        try:
            await ws.wait_closed()
        finally:
            members.discard(ws)

    def publish(self, token: str, body: bytes) -> int:
        tenant = self.tokens[token]
        members = self.sockets.get(tenant, ())
        readings = orjson.loads(body)["readings"]
        received = now_micros()
        for r in readings:
            stamp = r.get("timestamp")
            ts = to_micros(parse_timestamp(stamp)) if stamp else received
            event = orjson.dumps(
                {
                    "type": "sensor_update",
                    "machine_id": r["machine_id"],
                    "metric_name": r["metric_name"],
                    "value": float(r["value"]),
                    "unit": r.get("unit", ""),
                    "timestamp": format_micros(ts),
                }
            ).decode()
            broadcast(members, event)
        return len(readings)


class PostProtocol(asyncio.Protocol):
    """Just enough HTTP/1.1 for keep-alive POSTs with a Content-Length."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but they have the same methods.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            headers = {}
            for line in self.buffer[:end].split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get(b"content-length", b"0"))
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            token = headers[b"authorization"].decode().partition(" ")[2]
            accepted = self.relay.publish(token, body)
            reply = orjson.dumps({"accepted": accepted, "duplicates": 0, "rejected": []})
            assert self.transport is not None
            self.transport.write(
                b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                % (len(reply), reply)
            )


async def run(job: dict[str, Any]) -> None:
    relay = Relay(job["tokens"])
    loop = asyncio.get_running_loop()
    http = await loop.create_server(lambda: PostProtocol(relay), "127.0.0.1", job["http_port"], backlog=2048)
    async with serve(
        relay.handler,
        "127.0.0.1",
        job["ws_port"],
        compression=None,
        ping_interval=None,
        max_size=1024 * 1024,
        backlog=2048,
    ):
        print(json.dumps({"event": "listening"}), flush=True)
        await loop.run_in_executor(None, sys.stdin.readline)
    http.close()


def main() -> None:
    job = json.loads(sys.stdin.readline())
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    uvloop.run(run(job))


if __name__ == "__main__":
    main()

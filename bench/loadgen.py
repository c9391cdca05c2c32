"""The load generator, run in its own process: many dashboard sockets plus the poster that feeds the server.

`python -m bench.loadgen` reads one JSON job on stdin and writes JSON lines on stdout (`connected`, `mark`,
`result`). The same client drives our server and the baselines, so both sides pay the same client costs.

Speed matters here more than anywhere: a saturated client would hide the server's real rate, so every
socket is a bare asyncio.Protocol (no library, no per-frame object) that counts `sensor_update` frames with
`bytes.count` (C speed) instead of parsing each frame; its CPU use is reported with every result.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import socket
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any, cast

import uvloop

# Every sensor_update frame holds this exactly once; heartbeats, alerts and status events never do.
PATTERN = b'"type":"sensor_update"'
OVERLAP = len(PATTERN) - 1
UPGRADE = (
    "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def client_text_frame(text: str) -> bytes:
    """A masked text frame; the all-zero mask key leaves the payload as is (valid, and no XOR to compute)."""
    payload = text.encode()
    n = len(payload)
    if n < 126:
        header = bytes((0x81, 0x80 | n))
    elif n < 65536:
        header = bytes((0x81, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x81, 0x80 | 127)) + n.to_bytes(8, "big")
    return header + b"\x00\x00\x00\x00" + payload


@dataclass
class Group:
    """The sockets of one tenant and the batches posted to it."""

    batch: int
    healthy: int = 0
    posted: int = 0
    completed: int = 0
    hits: list[int] = field(default_factory=list)
    sent_at: list[float] = field(default_factory=list)
    last_arrival: list[float] = field(default_factory=list)
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def crossed(self, k: int, now: float) -> None:
        while len(self.hits) <= k:
            self.hits.append(0)
            self.last_arrival.append(0.0)
        self.hits[k] += 1
        self.last_arrival[k] = now
        if self.hits[k] == self.healthy and k + 1 > self.completed:
            self.completed = k + 1
            self.wake.set()


class DashboardClient(asyncio.Protocol):
    """One dashboard socket: upgrade, token, then count sensor_update frames as they stream in."""

    def __init__(self, request: bytes, token_frame: bytes, group: Group, stall: bool) -> None:
        self.request = request
        self.token_frame = token_frame
        self.group = group
        self.stall = stall
        self.count = 0
        self.next_boundary = group.batch
        self.tail = b""
        self.head = b""
        self.upgraded = False
        self.closed = False
        self.ready: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but they have the same methods.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if self.upgraded and self.ready.done():
            # Hot path: count in C, plus the few bytes that straddle the previous chunk.
            n = data.count(PATTERN)
            if self.tail:
                n += (self.tail + data[:OVERLAP]).count(PATTERN)
            self.tail = data[-OVERLAP:] if len(data) >= OVERLAP else (self.tail + data)[-OVERLAP:]
            if n:
                self.count += n
                if self.count >= self.next_boundary:
                    now = time.perf_counter()
                    while self.count >= self.next_boundary:
                        self.group.crossed(self.next_boundary // self.group.batch - 1, now)
                        self.next_boundary += self.group.batch
            return
        self._handshake(data)

    def _handshake(self, data: bytes) -> None:
        if not self.upgraded:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            if not self.head.startswith(b"HTTP/1.1 101"):
                self._fail()
                return
            self.upgraded = True
            assert self.transport is not None
            self.transport.write(self.token_frame)
            data = self.head[end + 4 :]
            self.head = b""
            if not data:
                return
        # The first frame after the token is the heartbeat that confirms authentication (a close frame: refused).
        if data[0] == 0x88:
            self._fail()
            return
        self.ready.set_result(True)
        if self.stall:
            assert self.transport is not None
            self.transport.pause_reading()

    def _fail(self) -> None:
        if not self.ready.done():
            self.ready.set_result(False)
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.ready.done():
            self.ready.set_result(False)


def emit(kind: str, **fields: Any) -> None:
    print(json.dumps({"event": kind, **fields}), flush=True)


def cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


async def open_sockets(job: dict[str, Any], groups: list[Group]) -> list[DashboardClient]:
    """Open and authenticate every socket of the job, a bounded number at a time."""
    loop = asyncio.get_running_loop()
    request = UPGRADE.format(path=job["ws_path"], port=job["ws_port"]).encode()
    gate = asyncio.Semaphore(job.get("connect_concurrency", 100))
    stall_every = job.get("stall_every", 0)
    clients: list[DashboardClient] = []

    async def one(group: Group, token_frame: bytes, stall: bool) -> None:
        async with gate:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            if stall:
                # A tiny kernel buffer so a client that stops reading pushes back on the server quickly.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.setblocking(False)
            await loop.sock_connect(sock, ("127.0.0.1", job["ws_port"]))
            _, client = await loop.create_connection(
                lambda: DashboardClient(request, token_frame, group, stall), sock=sock
            )
            clients.append(client)
            if not await asyncio.wait_for(client.ready, 30):
                raise RuntimeError("a dashboard socket was refused")

    jobs = []
    index = 0
    for group, spec in zip(groups, job["groups"], strict=True):
        frame = client_text_frame(spec["token"])
        for _ in range(spec["sockets"]):
            stall = bool(stall_every) and index % stall_every == stall_every - 1
            index += 1
            if not stall:
                group.healthy += 1
            jobs.append(one(group, frame, stall))
    await asyncio.gather(*jobs)
    return clients


async def post_batches(
    job: dict[str, Any], group: Group, spec: dict[str, Any], stop: asyncio.Event, interval: float | None
) -> None:
    """POST the group's batch (or its bodies in turn) again and again: within a window of undelivered batches,
    or at a fixed rate."""
    reader, writer = await asyncio.open_connection("127.0.0.1", job["http_port"])
    requests = []
    for text in spec.get("bodies") or [spec["body"]]:
        body = text.encode()
        requests.append(
            (
                f"POST {job['post_path']} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer {spec['post_token']}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
            + body
        )
    window = job.get("window", 4)
    next_at = time.perf_counter()
    while not stop.is_set():
        if interval is not None:
            next_at += interval
            delay = next_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        else:
            while group.posted - group.completed >= window and not stop.is_set():
                group.wake.clear()
                await group.wake.wait()
            if stop.is_set():
                break
        group.sent_at.append(time.perf_counter())
        writer.write(requests[group.posted % len(requests)])
        group.posted += 1
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith((b"HTTP/1.1 202", b"HTTP/1.1 200")):
            raise RuntimeError(f"ingest refused: {head[:200]!r}")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        await reader.readexactly(length)
    writer.close()


async def run(job: dict[str, Any]) -> None:
    groups = [Group(batch=spec["batch"]) for spec in job["groups"]]
    started, cpu_started = time.perf_counter(), cpu_seconds()
    clients = await open_sockets(job, groups)
    emit("connected", sockets=len(clients), seconds=time.perf_counter() - started, cpu=cpu_seconds() - cpu_started)
    if job["mode"] == "idle":
        # The orchestrator measures the server's memory now; it tells us to leave with one line.
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        return
    healthy = [c for c in clients if not c.stall]
    stop = asyncio.Event()
    interval = 1.0 / job["rate"] if job["mode"] == "rate" else None
    posters = [
        asyncio.create_task(post_batches(job, group, spec, stop, interval))
        for group, spec in zip(groups, job["groups"], strict=True)
    ]
    await asyncio.sleep(job["warmup"])
    emit("mark", at="start")
    count0, cpu0, t0 = sum(c.count for c in healthy), cpu_seconds(), time.perf_counter()
    batches0 = [g.posted for g in groups]
    await asyncio.sleep(job["duration"])
    count1, cpu1, t1 = sum(c.count for c in healthy), cpu_seconds(), time.perf_counter()
    emit("mark", at="end")
    # Keep every socket open until the orchestrator has looked at the server (it answers with one line).
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    stop.set()
    for group in groups:
        group.wake.set()
    await asyncio.gather(*posters, return_exceptions=True)
    if job["mode"] == "rate":
        # Let the last batches land, then measure each batch from its POST to its arrival at every socket.
        await asyncio.sleep(1.0)
    latencies = []
    for group, first in zip(groups, batches0, strict=True):
        for k in range(first, min(group.posted, group.completed)):
            latencies.append((group.last_arrival[k] - group.sent_at[k]) * 1000)
    latencies.sort()
    elapsed = t1 - t0
    result: dict[str, Any] = {
        "delivered_per_s": (count1 - count0) / elapsed,
        "per_socket_per_s": (count1 - count0) / elapsed / max(1, len(healthy)),
        "client_cpu": (cpu1 - cpu0) / elapsed,
        "stalled": len(clients) - len(healthy),
        "healthy_closed": sum(1 for c in healthy if c.closed),
        "batches": sum(g.posted for g in groups) - sum(batches0),
    }
    if latencies:
        result["p50_ms"] = statistics.median(latencies)
        result["p99_ms"] = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        result["samples"] = len(latencies)
    emit("result", **result)


def main() -> None:
    job = json.loads(sys.stdin.readline())
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if job.get("cpu") is not None:
        with contextlib.suppress(OSError):  # one CPU, or not allowed: run unpinned
            os.sched_setaffinity(0, {job["cpu"]})
    uvloop.run(run(job))


if __name__ == "__main__":
    main()

"""`python -m bench hostile`: what a hostile request body costs the server (issue 15, item 1).

A client sends a 300 MiB body, once with `Content-Length` and once chunked, to a route that takes a body
without credentials (login) and to routes that need one (machines, ingest) without a token. It writes as fast
as the server lets it while watching for the answer, and keeps writing after it, as a careless client would.
The table says when the answer came (how much the client had written by then: an upper bound of what the
server had read, the rest sitting in the two sockets' kernel buffers), how much the client could write before
the server closed the connection, and how far the server's peak RSS rose (`/proc/PID/status` VmHWM, reset
before each case through `/proc/PID/clear_refs`).
"""

from __future__ import annotations

import os
import selectors
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench import fanout

BODY_BYTES = 300 * 1024 * 1024
PIECE = 64 * 1024
# Targets of issue 15: a hostile body costs less than this much server memory, and is answered before read.
RSS_TARGET_MIB = 64
# A case that takes longer than this has stalled (the server neither answers nor closes).
CASE_SECONDS = 120.0
CASES = (
    ("login", "/api/v1/auth/login", False),
    ("login", "/api/v1/auth/login", True),
    ("machines, no token", "/api/v1/machines", False),
    ("machines, no token", "/api/v1/machines", True),
    ("ingest, no token", "/api/v1/sensor-data", False),
    ("ingest, no token", "/api/v1/sensor-data", True),
)
MIB = 1024 * 1024


@dataclass
class Outcome:
    status: str  # the status line's code, or what happened instead
    sent_at_answer: int | None  # body bytes written when the first byte of the answer arrived
    sent_total: int  # body bytes written before the server closed (or the body ended)
    answer_ms: float | None


def _status(pid: int, field: str) -> int:
    """A `/proc/PID/status` memory field in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def _reset_peak(pid: int) -> bool:
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def attack(port: int, path: str, chunked: bool, total: int = BODY_BYTES) -> Outcome:
    """Send `total` body bytes to `path`, reading whatever the server answers meanwhile."""
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}"
    head = f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n{framing}\r\n\r\n".encode()
    piece = b" " * PIECE
    if chunked:
        piece = f"{PIECE:x}\r\n".encode() + piece + b"\r\n"
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(head)
    sock.setblocking(False)
    started = time.perf_counter()
    sent = 0  # body bytes (chunk framing counted as body: it is what the server has to read)
    pending = b""
    answer = b""
    sent_at_answer: int | None = None
    answer_ms: float | None = None
    closed = False
    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
        while not closed and time.perf_counter() - started < CASE_SECONDS:
            writing = sent < total * len(piece) // PIECE
            if not writing and sent_at_answer is not None:
                break
            selector.modify(sock, selectors.EVENT_READ | (selectors.EVENT_WRITE if writing else 0))
            for _key, mask in selector.select(timeout=1.0):
                if mask & selectors.EVENT_READ:
                    try:
                        data = sock.recv(65536)
                    except (ConnectionResetError, BrokenPipeError):
                        data = b""
                    if not data:
                        closed = True
                        break
                    if sent_at_answer is None:
                        sent_at_answer, answer_ms = sent, (time.perf_counter() - started) * 1000
                    answer += data
                if mask & selectors.EVENT_WRITE and writing:
                    pending = pending or piece
                    try:
                        n = sock.send(pending)
                    except (ConnectionResetError, BrokenPipeError):
                        closed = True
                        break
                    sent += n
                    pending = pending[n:]
    sock.close()
    status = answer.split(b" ", 2)[1].decode() if answer.startswith(b"HTTP/") else "no answer"
    return Outcome(status, sent_at_answer, sent, answer_ms)


def _mib(value: int | None) -> str:
    return "—" if value is None else f"{value / MIB:.1f}"


def run() -> str:
    """Every case against a fresh server; returns the markdown table."""
    load_before = os.getloadavg()
    rows = []
    worst_rss = 0
    with tempfile.TemporaryDirectory(prefix="haltless-bench-hostile-") as tmp:
        server = fanout.start_ours(Path(tmp) / "ours", tenants=1)
        pid = server.process.pid
        try:
            rss_start = _status(pid, "VmRSS")
            for name, path, chunked in CASES:
                before = _status(pid, "VmRSS")
                peak_known = _reset_peak(pid)
                outcome = attack(server.http_port, path, chunked)
                time.sleep(0.2)  # let the server finish with what it read
                peak = _status(pid, "VmHWM") if peak_known else _status(pid, "VmRSS")
                growth = max(0, peak - before)
                worst_rss = max(worst_rss, growth)
                mark = "✅" if growth < RSS_TARGET_MIB * MIB else "❌"
                answer_ms = "—" if outcome.answer_ms is None else f"{outcome.answer_ms:.0f}"
                rows.append(
                    f"| {name}, {'chunked' if chunked else 'Content-Length'} | {outcome.status} | "
                    f"{_mib(outcome.sent_at_answer)} | {_mib(outcome.sent_total)} | {answer_ms} | "
                    f"{growth / MIB:.1f} {mark} |"
                )
            rss_end = _status(pid, "VmRSS")
        finally:
            server.stop()
    return "\n".join(
        [
            f"Load average (1 min) {load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after. Each case sends "
            f"{BODY_BYTES // MIB} MiB; server RSS {rss_start / MIB:.0f} MiB at the start, {rss_end / MIB:.0f} MiB "
            f"after all cases; worst peak growth {worst_rss / MIB:.1f} MiB (target < {RSS_TARGET_MIB} MiB).",
            "",
            "| case (300 MiB body) | answer | client had written when answered (MiB) | client could write before "
            "the close (MiB) | answer after (ms) | server peak RSS growth (MiB) |",
            "|---|---|---:|---:|---:|---:|",
            *rows,
        ]
    )


if __name__ == "__main__":
    print(run())

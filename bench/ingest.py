"""M4 ingest: readings/s through POST /api/v1/sensor-data against raw sqlite3.executemany of the same rows.

Ours: the server as `haltless serve` runs it (bench.serve_ours), three alert rules on the metrics (quiet, but
evaluated for every reading), 10 dashboard sockets receiving every event, and one keep-alive client posting
500-reading batches back to back (at most WINDOW not yet delivered). Raw: the same rows inserted with
`executemany` into the same migrated schema (same indexes) with the same pragmas, one transaction per 500,
on the same CPU the server was pinned to.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path

import orjson

from bench import fanout
from haltless.store.database import SQLITE_PRAGMAS, create_engine, migrate

BATCH = 500
SOCKETS = 10
RAW_SECONDS = 3.0
TARGET = 0.6


async def _migrated(path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    await migrate(engine)
    await engine.dispose()


def raw_rate(path: Path, body: str) -> float:
    """Rows/s of executemany, 500 rows per transaction, with the server's pragmas."""
    asyncio.run(_migrated(path))
    tenant_id = str(uuid.uuid4())
    readings = orjson.loads(body)["readings"]
    machine_ids = sorted({r["machine_id"] for r in readings})
    db = sqlite3.connect(path, timeout=30)
    for pragma in SQLITE_PRAGMAS:
        db.execute(f"PRAGMA {pragma}")
    with db:
        db.execute("INSERT INTO tenants (id, name, created_at) VALUES (?, 'bench', 0)", (tenant_id,))
        db.executemany(
            "INSERT INTO machines (id, tenant_id, name, tags, status, maintenance, created_at)"
            " VALUES (?, ?, ?, '[]', 'healthy', 0, 0)",
            [(m, tenant_id, f"machine {i}") for i, m in enumerate(machine_ids)],
        )
    insert = (
        "INSERT INTO readings (tenant_id, machine_id, metric_name, value, unit, ts, received_at, reading_id)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    )
    rows = 0
    started = time.perf_counter()
    while time.perf_counter() - started < RAW_SECONDS:
        now = time.time_ns() // 1000
        batch = [
            (tenant_id, r["machine_id"], r["metric_name"], r["value"], r["unit"], now, now, None) for r in readings
        ]
        with db:
            db.executemany(insert, batch)
        rows += len(batch)
    elapsed = time.perf_counter() - started
    db.close()
    return rows / elapsed


def run() -> str:
    """Measure both sides; returns the markdown table."""
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="haltless-bench-ingest-") as tmp:
        server = fanout.start_ours(Path(tmp) / "ours", tenants=1, batch=BATCH)
        try:
            ours = fanout.drive(server, SOCKETS)
        finally:
            server.stop()
        previous = os.sched_getaffinity(0)
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {fanout.SERVER_CPU})
        try:
            raw = raw_rate(Path(tmp) / "raw.db", server.groups[0]["body"])
        finally:
            os.sched_setaffinity(0, previous)
    rate = ours["per_socket_per_s"]
    ratio = rate / raw
    mark = "✅" if ratio >= TARGET else "❌"
    return "\n".join(
        [
            f"Load average (1 min) {load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after; {BATCH}-reading "
            f"POSTs, 3 alert rules, {SOCKETS} sockets; server CPU {ours['server_cpu']:.0%} "
            f"(waited for a CPU {ours['server_wait']:.0%}), client CPU {ours['client_cpu']:.0%}.",
            "",
            "| case | ours (readings/s) | raw sqlite3.executemany (rows/s) | ours ÷ raw | target |",
            "|---|---:|---:|---:|---|",
            f"| M4 ingest: POST → validate → store → rules → broadcast | {rate:,.0f} | {raw:,.0f} | {ratio:.2f} "
            f"| ≥ {TARGET} {mark} |",
        ]
    )


if __name__ == "__main__":
    print(run())

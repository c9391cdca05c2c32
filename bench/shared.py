"""`python -m bench shared`: an ingest batch in shared mode (several processes on PostgreSQL) as a tenant's rules grow.

In shared mode every change of a tenant refreshes, inside the tenant's advisory lock, what another process may have
changed: the rules (only when `tenants.rules_revision` moved), the states, open alerts and health of the batch's
machines, and the clocks of its series. This runs the real ingest pipeline (`IngestPipeline` over
`Changes(shared=True)`) in-process on a throwaway PostgreSQL database, without HTTP or sockets: 500-reading
batches of 10 machines × 3 metrics, tenant-wide rules that never fire (half `>` a threshold, half `<` one), cases
in turn. Process CPU (the event loop and asyncpg) and wall time a batch (PostgreSQL's own work shows in the
latter). Opt-in: it needs PostgreSQL and measures one mode.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import uuid
from datetime import UTC, datetime

import orjson

from bench import postgres
from bench.planning import METRICS, quiet_rule
from haltless.bus.memory import MemoryBus
from haltless.core.clock import ManualClock
from haltless.server.service.changes import Changes
from haltless.server.service.ingest import IngestPipeline
from haltless.settings import Settings
from haltless.store import accounts, database, machines
from haltless.store import alerts as alert_store

MACHINES = 10
BATCH = 500
BATCHES = 60
WARMUP = 5
ROUNDS = 3
RULE_COUNTS = (3, 100, 1000)
START_S = 1_767_607_200  # 2026-01-05 10:00:00Z


def _body(machine_ids: list[str], second: int) -> bytes:
    readings = [
        {
            "machine_id": machine_ids[i % MACHINES],
            "metric_name": METRICS[i % len(METRICS)],
            "value": 50.0 + i % 7,
            "unit": "u",
            "timestamp": datetime.fromtimestamp(second + (i % 50) / 10, UTC).isoformat(),
        }
        for i in range(BATCH)
    ]
    return orjson.dumps({"readings": readings})


async def _ms_a_batch(url: str, rules: int) -> tuple[float, float]:
    """(process CPU ms, wall ms) a batch, after a warm-up."""
    engine = database.create_engine(url)
    try:
        await database.migrate(engine)
        async with engine.begin() as conn:
            tenant_id, _ = await accounts.create_tenant(
                conn, name="Plant", email="ops@example.com", password_hash="x", now=1
            )
            machine_ids = [
                (await machines.create(conn, tenant_id=tenant_id, name=f"M{i}", location=None, tags=[], now=1)).id
                for i in range(MACHINES)
            ]
            for n in range(rules):
                await alert_store.insert_rule(conn, quiet_rule(str(uuid.uuid4()), tenant_id, n), 1)
            await alert_store.raise_rules_revision(conn, tenant_id)
        changes = Changes(engine, MemoryBus(10), ManualClock(1), offline_after=3600, shared=True)
        await changes.load()
        pipeline = IngestPipeline(Settings(bus_url="memory://"), changes)
        cpu = wall = 0.0
        for number in range(WARMUP + BATCHES):
            second = START_S + number * 10
            body = _body(machine_ids, second)
            cpu_before, wall_before = time.process_time(), time.perf_counter()
            result = await pipeline.ingest_body(tenant_id, body, (second + 100) * 1_000_000)
            if number >= WARMUP:
                cpu += time.process_time() - cpu_before
                wall += time.perf_counter() - wall_before
            if result.accepted != BATCH:
                raise AssertionError(f"a batch was not stored whole: {result.as_json()}")
        return cpu / BATCHES * 1000, wall / BATCHES * 1000
    finally:
        await engine.dispose()


def run() -> str:
    reason = postgres.unreachable()
    if reason is not None:
        return f"skipped: {reason}"
    load_before = os.getloadavg()
    runs: dict[int, list[tuple[float, float]]] = {rules: [] for rules in RULE_COUNTS}
    for _ in range(ROUNDS):  # cases in turn, so a slow spell of the machine falls on all of them alike
        for rules in RULE_COUNTS:
            with postgres.throwaway_database() as name:
                runs[rules].append(asyncio.run(_ms_a_batch(postgres.sqlalchemy_url(name), rules)))
    first_cpu = statistics.median(cpu for cpu, _ in runs[RULE_COUNTS[0]])
    lines = [
        f"Load average (1 min) {load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after, on {os.cpu_count()} "
        f"CPUs. PostgreSQL, shared mode, {BATCH}-reading batches of {MACHINES} machines × {len(METRICS)} metrics, "
        f"{BATCHES} batches after {WARMUP} of warm-up, median of {ROUNDS} rounds (cases in turn).",
        "",
        "| tenant-wide rules | process CPU a batch (ms) | ÷ first row | wall a batch (ms) | rounds (CPU / wall) |",
        "|---:|---:|---:|---:|---|",
    ]
    for rules, measured in runs.items():
        cpu = statistics.median(c for c, _ in measured)
        wall = statistics.median(w for _, w in measured)
        rounds = ", ".join(f"{c:.2f} / {w:.2f}" for c, w in measured)
        lines.append(f"| {rules:,} | {cpu:.2f} | {cpu / first_cpu:.2f} | {wall:.2f} | {rounds} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(run())

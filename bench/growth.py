"""Cost growth: how ingest, fan-out and start-up costs move as their inputs grow, each row a ratio to its first column.

`python -m bench growth` runs, on SQLite, side by side where a baseline exists:
- ingest with 40, 400 and 5,000 distinct series (machine × metric) walked by 500-reading batches, ours against
  raw `executemany` of the same rows (bench/ingest.py's baseline);
- ingest with 3, 100 and 1,000 alert rules per tenant (10 machines × 3 metrics; rules never fire);
- fan-out with 1 × 1,000, 50 × 20 and 500 × 2 tenants × sockets, ours against baseline B;
- start-up (process start to /api/v1/health answering) with 10 × 10 and 1,000 × 100 machines × rules, and the
  start-up query that looks up the newest reading once per (rule, machine) pair, timed on its own beside the same
  answer looked up once per (machine, metric).
History queries and RSS at 1M and 10M stored readings are `python -m bench large` (bench/large.py).

A cost "grows faster than its input" when its ratio to the first column exceeds the input's own ratio; for rates,
the cost is the time per reading, so a rate that falls while its baseline holds is flagged too.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bench import fanout, fleet, ingest
from haltless.store import alerts as alert_store
from haltless.store.database import create_engine

DURATION = 4.0  # seconds measured per saturation run (after fanout.WARMUP)
SOCKETS = ingest.SOCKETS
SERIES_METRICS = 4
SERIES_CASES = (40, 400, 5000)  # 10, 100 and 1,250 machines × 4 metrics
RULE_CASES = (3, 100, 1000)
FANOUT_CASES = ((1, 1000), (50, 20), (500, 2))
STARTUP_CASES = ((10, 10), (1000, 100))  # machines × rules, one tenant
STARTUP_METRICS = 4
STARTUP_READINGS_SECONDS = 10  # each (machine, metric) gets this many readings, so every lookup finds rows
STARTUP_RUNS = 3
# A same-size answer from a bigger input should cost about the same; past this ratio the row says so.
DRIFT = 1.25

# What start-up ran until 2026-12-05: the newest reading of each rule's metric looked up once per (rule, machine)
# pair, for a `last_ts` per pair. Start-up now keeps one clock per (machine, metric) series
# (`alerts.newest_per_series`); this is timed beside it.
PER_PAIR_SQL = """
SELECT r.id, m.id,
       (SELECT max(ts) FROM readings WHERE machine_id = m.id AND metric_name = r.metric_name)
FROM alert_rules AS r
JOIN machines AS m ON m.tenant_id = r.tenant_id AND (r.machine_id IS NULL OR r.machine_id = m.id)
"""


def _seeded(data_dir: Path, secret: str, **shape: int) -> list[fleet.SeededTenant]:
    return asyncio.run(fleet.seed(fanout.sqlite_url(data_dir), secret, **shape))


def _cpu_us_per_reading(result: dict[str, Any]) -> float:
    return float(result["server_cpu"]) / float(result["per_socket_per_s"]) * 1e6


def ingest_with_series(tmp: Path, series: int) -> tuple[dict[str, Any], float]:
    """Ours and raw executemany with `series` distinct series walked round-robin by 500-reading batches."""
    data_dir, secret = tmp / f"series-{series}", secrets.token_hex(32)
    machines = series // SERIES_METRICS
    tenant = _seeded(
        data_dir, secret, tenants=1, machines_per_tenant=machines, metrics=SERIES_METRICS, rules_per_tenant=3
    )[0]
    bodies = fleet.series_bodies(tenant.machine_ids, SERIES_METRICS, ingest.BATCH)
    # Raw runs before and after ours (each into a fresh file): its 3 s runs move with the machine's load.
    before = ingest.on_server_cpu_run(lambda: ingest.raw_rate(tmp / f"raw-{series}-before.db", bodies))
    server = fanout.launch_ours(data_dir, secret, batch=ingest.BATCH)
    try:
        server.groups = [{"token": tenant.token, "post_token": tenant.token, "body": bodies[0], "bodies": bodies}]
        ours = fanout.drive(server, SOCKETS, duration=DURATION)
    finally:
        server.stop()
    after = ingest.on_server_cpu_run(lambda: ingest.raw_rate(tmp / f"raw-{series}-after.db", bodies))
    return ours, (before + after) / 2


def ingest_with_rules(tmp: Path, rules: int) -> dict[str, Any]:
    """Ours with `rules` tenant-wide rules on 3 metrics of 10 machines (the M4 body)."""
    data_dir, secret = tmp / f"rules-{rules}", secrets.token_hex(32)
    tenant = _seeded(data_dir, secret, tenants=1, machines_per_tenant=10, metrics=3, rules_per_tenant=rules)[0]
    server = fanout.launch_ours(data_dir, secret, batch=ingest.BATCH)
    try:
        body = fanout.reading_body(tenant.machine_ids, ingest.BATCH)
        server.groups = [{"token": tenant.token, "post_token": tenant.token, "body": body}]
        return fanout.drive(server, SOCKETS, duration=DURATION)
    finally:
        server.stop()


def fanout_by_tenants(tmp: Path) -> dict[tuple[str, int], dict[str, Any]]:
    """Delivered msg/s for each (tenants × sockets) shape, ours and B, on one server of each kind."""
    most = max(tenants for tenants, _ in FANOUT_CASES)
    data_dir, secret = tmp / "fanout", secrets.token_hex(32)
    made = _seeded(
        data_dir, secret, tenants=most, machines_per_tenant=fanout.MACHINES_PER_TENANT, metrics=3, rules_per_tenant=3
    )
    results: dict[tuple[str, int], dict[str, Any]] = {}
    servers = [fanout.launch_ours(data_dir, secret)]
    try:
        servers[0].groups = [
            {"token": t.token, "post_token": t.token, "body": fanout.reading_body(t.machine_ids, fanout.BATCH)}
            for t in made
        ]
        servers.append(fanout.start_baseline(tenants=most))
        for server in servers:
            # Every tenant's first batch costs more than the rest (its fleet loaded, its series' units registered,
            # its token verified): one unmeasured pass over all of them, or 500 × 2's first contacts (450 tenants,
            # 13,500 series) fell into its measured seconds and its CPU per reading read ~1.5x that of 50 × 20.
            fanout.drive(server, 1, duration=1.0)
        for tenants, per in FANOUT_CASES:
            for server in servers:
                whole = server.groups
                server.groups = whole[:tenants]
                try:
                    results[(server.name, tenants)] = fanout.drive(server, per, duration=DURATION)
                finally:
                    server.groups = whole
    finally:
        for server in servers:
            server.stop()
    return results


async def _startup_queries(url: str) -> tuple[float, int, float, int]:
    """(ms, pairs) of the per-(rule, machine) start-up query of old, and (ms, lookups) of the per-(machine, metric)
    one start-up runs now."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            per_pair: list[float] = []
            per_series: list[float] = []
            pairs = lookups = 0
            for _ in range(STARTUP_RUNS):
                started = time.perf_counter()
                pairs = len((await conn.execute(text(PER_PAIR_SQL))).all())
                per_pair.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                lookups = len(await alert_store.newest_per_series(conn))
                per_series.append((time.perf_counter() - started) * 1000)
        return statistics.median(per_pair), pairs, statistics.median(per_series), lookups
    finally:
        await engine.dispose()


def startup(tmp: Path, machines: int, rules: int, *, stored: bool = True) -> dict[str, float]:
    """Median start-up seconds and RSS after start-up of our server on a seeded fleet, plus its query timings.

    `stored=False` leaves the readings table empty: the start-up lookups then find nothing, which tells what
    the stored readings cost start-up's memory apart from the rest (until 2026-12-05 a state per (rule, machine)).
    """
    data_dir, secret = tmp / f"startup-{machines}x{rules}-{stored}", secrets.token_hex(32)
    tenant = _seeded(
        data_dir, secret, tenants=1, machines_per_tenant=machines, metrics=STARTUP_METRICS, rules_per_tenant=rules
    )[0]
    if stored:
        seconds_of_history = STARTUP_READINGS_SECONDS
        fleet.add_history(data_dir / "haltless.db", tenant, STARTUP_METRICS, first_second=0, seconds=seconds_of_history)
    seconds: list[float] = []
    rss: list[int] = []
    for _ in range(STARTUP_RUNS):
        started = time.perf_counter()
        server = fanout.launch_ours(data_dir, secret, deadline=300)
        try:
            seconds.append(time.perf_counter() - started)
            rss.append(server.stats()[1])
        finally:
            server.stop()
    per_pair_ms, pairs, per_series_ms, lookups = asyncio.run(_startup_queries(fanout.sqlite_url(data_dir)))
    return {
        "seconds": statistics.median(seconds),
        "rss": statistics.median(rss),
        "per_pair_ms": per_pair_ms,
        "pairs": pairs,
        "per_series_ms": per_series_ms,
        "lookups": lookups,
    }


def _ratios(values: list[float]) -> str:
    return " / ".join(f"{value / values[0]:.2f}" for value in values)


def _flag(cost_ratio: float, input_ratio: float) -> str:
    return "⚠ grows faster than its input" if cost_ratio > input_ratio else ""


def run() -> str:
    """Measure every growth case; returns the markdown table."""
    load_before = os.getloadavg()
    rows: list[str] = []
    with tempfile.TemporaryDirectory(prefix="haltless-bench-growth-") as tmp_name:
        tmp = Path(tmp_name)

        series_runs = [ingest_with_series(tmp, series) for series in SERIES_CASES]
        ours = [run["per_socket_per_s"] for run, _ in series_runs]
        raw = [raw_rate for _, raw_rate in series_runs]
        relative = [o / r for o, r in zip(ours, raw, strict=True)]
        inputs = " / ".join(f"{s:,}" for s in SERIES_CASES)
        # Cost per reading ratio, ours against raw's: above DRIFT, ours slows down more than SQLite itself does.
        beyond = (ours[0] / ours[-1]) / (raw[0] / raw[-1])
        rows += [
            f"| ingest, ours (readings/s) | {inputs} series | {' / '.join(f'{v:,.0f}' for v in ours)} "
            f"| {_ratios(ours)} | server CPU {fanout.shares([r for r, _ in series_runs], 'server_cpu')}, "
            f"{' / '.join(f'{_cpu_us_per_reading(r):.1f}' for r, _ in series_runs)} µs CPU a reading; "
            f"client CPU {fanout.shares([r for r, _ in series_runs], 'client_cpu')} |",
            f"| ingest, raw executemany (rows/s) | {inputs} series | {' / '.join(f'{v:,.0f}' for v in raw)} "
            f"| {_ratios(raw)} | same rows, same schema and pragmas; mean of a run before and one after ours |",
            f"| ingest, ours ÷ raw | {inputs} series | {' / '.join(f'{v:.2f}' for v in relative)} "
            f"| {_ratios(relative)} | {'⚠ ours slows more than SQLite does' if beyond > DRIFT else ''} |",
        ]

        rule_runs = [ingest_with_rules(tmp, rules) for rules in RULE_CASES]
        rates = [run["per_socket_per_s"] for run in rule_runs]
        cpu = [_cpu_us_per_reading(run) for run in rule_runs]
        cost_ratio = cpu[-1] / cpu[0]
        rows.append(
            f"| ingest with rules (readings/s) | {' / '.join(f'{r:,}' for r in RULE_CASES)} rules "
            f"| {' / '.join(f'{v:,.0f}' for v in rates)} | {_ratios(rates)} "
            f"| {' / '.join(f'{v:.1f}' for v in cpu)} µs CPU a reading ({_ratios(cpu)}); "
            f"server CPU {fanout.shares(rule_runs, 'server_cpu')} "
            f"(waited {fanout.shares(rule_runs, 'server_wait')}) "
            f"{_flag(cost_ratio, RULE_CASES[-1] / RULE_CASES[0])} |"
        )

        spread = fanout_by_tenants(tmp)
        shapes = " / ".join(f"{t} × {s:,}" for t, s in FANOUT_CASES)
        for name in ("ours", "B"):
            runs = [spread[(name, tenants)] for tenants, _ in FANOUT_CASES]
            delivered = [run["delivered_per_s"] for run in runs]
            ingested = [run["delivered_per_s"] / per for run, (_, per) in zip(runs, FANOUT_CASES, strict=True)]
            # Each step sends a reading to fewer sockets, so its cost per reading should fall, never rise.
            per_reading = [run["server_cpu"] / rate * 1e6 for run, rate in zip(runs, ingested, strict=True)]
            rising = any(b > a * DRIFT for a, b in itertools.pairwise(per_reading))
            rows += [
                f"| fan-out, {name} (delivered msg/s) | {shapes} tenants × sockets "
                f"| {' / '.join(fanout.fmt_rate(v) for v in delivered)} | {_ratios(delivered)} "
                f"| readings in {' / '.join(f'{v:,.0f}' for v in ingested)}/s; "
                f"server CPU {fanout.shares(runs, 'server_cpu')} (waited {fanout.shares(runs, 'server_wait')}), "
                f"client CPU {fanout.shares(runs, 'client_cpu')} |",
                f"| fan-out, {name}: server CPU per reading in (µs) | {shapes} "
                f"| {' / '.join(f'{v:,.1f}' for v in per_reading)} | {_ratios(per_reading)} "
                f"| {'⚠ rises as tenants grow' if rising else 'falls with the sockets each reading reaches'} |",
            ]
        versus = [spread[("ours", t)]["delivered_per_s"] / spread[("B", t)]["delivered_per_s"] for t, _ in FANOUT_CASES]
        rows.append(
            f"| fan-out, ours ÷ B | {shapes} | {' / '.join(f'{v:.2f}' for v in versus)} | {_ratios(versus)} "
            f"| B neither stores nor evaluates rules: with few sockets a reading, ingest is ours' cost (M4) |"
        )

        starts = [startup(tmp, machines, rules) for machines, rules in STARTUP_CASES]
        empty = startup(tmp, *STARTUP_CASES[-1], stored=False)
        shapes = " / ".join(f"{m:,} × {r:,}" for m, r in STARTUP_CASES)
        pairs = [m * r for m, r in STARTUP_CASES]
        seconds = [s["seconds"] for s in starts]
        rss = [s["rss"] for s in starts]
        per_pair = [s["per_pair_ms"] for s in starts]
        per_series = [s["per_series_ms"] for s in starts]
        looked_up = [int(s["pairs"]) for s in starts]
        lookups = [int(s["lookups"]) for s in starts]
        state_bytes = (rss[-1] - empty["rss"]) / pairs[-1]
        rows += [
            f"| start-up, process start → /api/v1/health (s) | {shapes} machines × rules "
            f"| {' / '.join(f'{v:.2f}' for v in seconds)} | {_ratios(seconds)} "
            f"| (rule, machine) pairs {' / '.join(f'{p:,}' for p in pairs)}; {empty['seconds']:.2f} s for "
            f"{shapes.split(' / ')[-1]} with no readings stored |",
            f"| start-up query: newest reading per watched (machine, metric) (ms) | {shapes} "
            f"| {' / '.join(f'{v:.1f}' for v in per_series)} | {_ratios(per_series)} "
            f"| {' / '.join(f'{v:,}' for v in lookups)} index lookups |",
            f"| the same per (rule, machine), as start-up ran it before (ms) | {shapes} "
            f"| {' / '.join(f'{v:.1f}' for v in per_pair)} | {_ratios(per_pair)} "
            f"| {' / '.join(f'{v:,}' for v in looked_up)} index lookups |",
            f"| RSS after start-up (MiB) | {shapes} | {' / '.join(f'{v / 2**20:.0f}' for v in rss)} | {_ratios(rss)} "
            f"| {empty['rss'] / 2**20:.0f} MiB for {shapes.split(' / ')[-1]} with no readings stored: stored "
            f"readings add ~{state_bytes:,.0f} bytes per (rule, machine) pair |",
        ]
    return "\n".join(
        [
            f"Load average (1 min) {load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after, on "
            f"{os.cpu_count()} CPUs; SQLite; {fanout.WARMUP:.0f} s warm-up and {DURATION:.0f} s measured per "
            f"saturation run; ingest posts {ingest.BATCH}-reading batches to {SOCKETS} sockets; fan-out posts "
            f"{fanout.BATCH}-reading batches; start-up is the median of {STARTUP_RUNS} starts, with "
            f"{STARTUP_READINGS_SECONDS} readings per (machine, metric) stored.",
            "",
            "| cost | inputs | values | ÷ first column | notes |",
            "|---|---|---:|---:|---|",
            *rows,
        ]
    )


if __name__ == "__main__":
    print(run())

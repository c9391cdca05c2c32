"""M4 ingest: readings/s through POST /api/v1/sensor-data against the database's own fastest bulk insert.

Ours: the server as `haltless serve` runs it (bench.serve_ours), three alert rules on the metrics (quiet, but
evaluated for every reading), 10 dashboard sockets receiving every event, and one keep-alive client posting
500-reading batches back to back (at most WINDOW not yet delivered).

Raw, on SQLite: the same rows inserted with `executemany` into the same migrated schema (same indexes) with the
same pragmas, one transaction per 500, on the same CPU the server was pinned to. On PostgreSQL (the machine's
server, a throwaway database per side): asyncpg's `copy_records_to_table` of the same rows into the same
migrated schema, one transaction per 500, one connection, same CPU; the server runs with that database as its
`HALTLESS_DATABASE_URL`. PostgreSQL's own settings are the same for both sides.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from statistics import median_low
from typing import Any, TypeVar

import asyncpg
import httpx
import orjson

from bench import fanout, postgres, profile_ingest
from bench.nab import detector_build
from haltless.store.database import SQLITE_PRAGMAS, create_engine, migrate

BATCH = 500
SOCKETS = 10
RAW_SECONDS = 3.0
TARGET = 0.6
# On SQLite, plain M4, its raw baseline and each variant are measured this many times, alternating (`run`), each
# server run for ROUND_SECONDS after the load generator's warm-up: three short rounds say more than one long run on
# a shared machine, and keep `make bench` under its 10 minutes.
ROUNDS = 3
ROUND_SECONDS = 3.0
# The columns the server's insert writes, in its order (`id` comes from the table's sequence).
COLUMNS = ("tenant_id", "machine_id", "metric_name", "value", "unit", "ts", "received_at", "reading_id")

_T = TypeVar("_T")


async def _migrated(url: str) -> None:
    engine = create_engine(url)
    await migrate(engine)
    await engine.dispose()


def _machine_ids(bodies: list[str]) -> list[str]:
    return sorted({r["machine_id"] for body in bodies for r in orjson.loads(body)["readings"]})


def _rows(tenant_id: str, readings: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    now = time.time_ns() // 1000
    return [(tenant_id, r["machine_id"], r["metric_name"], r["value"], r["unit"], now, now, None) for r in readings]


@contextlib.contextmanager
def on_server_cpu() -> Iterator[None]:
    """Run the baseline on the CPU the server under test was pinned to."""
    previous = os.sched_getaffinity(0)
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, {fanout.SERVER_CPU})
    try:
        yield
    finally:
        os.sched_setaffinity(0, previous)


def raw_rate(path: Path, bodies: list[str]) -> float:
    """Rows/s of sqlite3 executemany of the bodies' rows in turn, 500 rows per transaction, the server's pragmas."""
    asyncio.run(_migrated(f"sqlite+aiosqlite:///{path}"))
    tenant_id = str(uuid.uuid4())
    batches = [orjson.loads(body)["readings"] for body in bodies]
    db = sqlite3.connect(path, timeout=30)
    for pragma in SQLITE_PRAGMAS:
        db.execute(f"PRAGMA {pragma}")
    with db:
        db.execute("INSERT INTO tenants (id, name, created_at) VALUES (?, 'bench', 0)", (tenant_id,))
        db.executemany(
            "INSERT INTO machines (id, tenant_id, name, tags, status, maintenance, created_at)"
            " VALUES (?, ?, ?, '[]', 'healthy', 0, 0)",
            [(m, tenant_id, f"machine {i}") for i, m in enumerate(_machine_ids(bodies))],
        )
    insert = f"INSERT INTO readings ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    rows = 0
    started = time.perf_counter()
    while time.perf_counter() - started < RAW_SECONDS:
        batch = _rows(tenant_id, batches[(rows // BATCH) % len(batches)])
        with db:
            db.executemany(insert, batch)
        rows += len(batch)
    elapsed = time.perf_counter() - started
    db.close()
    return rows / elapsed


async def _copy_rate(database: str, bodies: list[str]) -> float:
    await _migrated(postgres.sqlalchemy_url(database))
    tenant_id = str(uuid.uuid4())
    batches = [orjson.loads(body)["readings"] for body in bodies]
    conn = await asyncpg.connect(postgres.dsn(database), timeout=10)
    try:
        async with conn.transaction():
            await conn.execute("INSERT INTO tenants (id, name, created_at) VALUES ($1, 'bench', 0)", tenant_id)
            await conn.executemany(
                "INSERT INTO machines (id, tenant_id, name, tags, status, maintenance, created_at)"
                " VALUES ($1, $2, $3, '[]', 'healthy', false, 0)",
                [(m, tenant_id, f"machine {i}") for i, m in enumerate(_machine_ids(bodies))],
            )
        rows = 0
        started = time.perf_counter()
        while time.perf_counter() - started < RAW_SECONDS:
            batch = _rows(tenant_id, batches[(rows // BATCH) % len(batches)])
            async with conn.transaction():
                await conn.copy_records_to_table("readings", records=batch, columns=COLUMNS)
            rows += len(batch)
        return rows / (time.perf_counter() - started)
    finally:
        await conn.close()


def copy_rate(database: str, bodies: list[str]) -> float:
    """Rows/s of asyncpg COPY of the bodies' rows in turn, 500 rows per transaction, into a migrated database."""
    return asyncio.run(_copy_rate(database, bodies))


def anomaly_rules(http: httpx.Client) -> None:
    """An anomaly rule (medium) on each metric of the M4 body, for every machine: one on every series (issue 18)."""
    for metric, _unit, _base in fanout.METRICS:
        rule = {"name": f"{metric} unusual", "metric_name": metric, "kind": "anomaly", "sensitivity": "medium"}
        http.post("/api/v1/alert-rules", json=rule).raise_for_status()


def notification_policy(http: httpx.Client) -> None:
    """Two webhook channels and a default policy sending every alert change to both (issue 17). The M4 rules stay
    quiet, so nothing is ever sent: what is measured is what a configured policy costs ingest."""
    channel_ids = []
    for name in ("ops", "maintenance"):
        channel = {
            "name": name,
            "type": "webhook",
            "webhook": {"url": f"https://hooks.example.com/{name}", "format": "haltless", "secret": "s" * 32},
        }
        created = http.post("/api/v1/notification-channels", json=channel)
        created.raise_for_status()
        channel_ids.append(created.json()["id"])
    policy = {"name": "everything", "channel_ids": channel_ids, "is_default": True, "group_by": "rule"}
    http.post("/api/v1/notification-policies", json=policy).raise_for_status()


# M4 variants: (row label, setup through the API after the usual machines and rules, target ÷ plain M4).
VARIANTS: tuple[tuple[str, Callable[[httpx.Client], None], float], ...] = (
    ("M4 + an anomaly rule on every series", anomaly_rules, 0.9),
    ("M4 + a notification policy and two channels", notification_policy, 0.95),
)


def measure_ours(
    data_dir: Path,
    database_url: str | None = None,
    configure: Callable[[httpx.Client], None] | None = None,
    duration: float = fanout.DURATION,
) -> tuple[dict[str, Any], str]:
    """One M4 run of our server; returns the load generator's result and the body it posted."""
    server = fanout.start_ours(data_dir, tenants=1, batch=BATCH, database_url=database_url)
    try:
        if configure is not None:
            token = server.groups[0]["token"]
            auth = {"Authorization": f"Bearer {token}"}
            with httpx.Client(base_url=f"http://127.0.0.1:{server.http_port}", headers=auth, timeout=30) as http:
                configure(http)
        return fanout.drive(server, SOCKETS, duration=duration), server.groups[0]["body"]
    finally:
        server.stop()


def on_server_cpu_run(measure: Callable[[], _T]) -> _T:
    """A baseline measured on the server's CPU."""
    with on_server_cpu():
        return measure()


def _median_round(ratios: list[float]) -> int:
    """The index of the round whose ratio is the median (the lower middle one of an even count)."""
    order = sorted(range(len(ratios)), key=ratios.__getitem__)
    return order[(len(order) - 1) // 2]


def _rounds(ratios: list[float]) -> str:
    return ", ".join(f"{ratio:.2f}" for ratio in ratios)


def _row(name: str, runs: list[tuple[dict[str, Any], float]], raw_name: str) -> str:
    """Ours against the raw baseline, each round's pair measured back to back; the median round is shown."""
    ratios = [ours["per_socket_per_s"] / raw for ours, raw in runs]
    ours, raw = runs[_median_round(ratios)]
    rate, ratio = ours["per_socket_per_s"], ratios[_median_round(ratios)]
    mark = "✅" if ratio >= TARGET else "❌"
    rounds = f"rounds {_rounds(ratios)}; " if len(runs) > 1 else ""
    return (
        f"| {name} | {rate:,.0f} | {raw_name} | {raw:,.0f} | {ratio:.2f} | ≥ {TARGET} {mark} "
        f"| {rounds}server CPU {ours['server_cpu']:.0%} (waited for a CPU {ours['server_wait']:.0%}), "
        f"client CPU {ours['client_cpu']:.0%} |"
    )


def _variant_row(name: str, runs: list[tuple[dict[str, Any], dict[str, Any], float]], target: float) -> str:
    """A variant beside plain M4, each round's variant against the plain run just before it on the same machine:
    the median ratio of rates, and of the server's CPU per reading, which moves less with the machine's load."""
    ratios = [ours["per_socket_per_s"] / plain["per_socket_per_s"] for ours, plain, _ in runs]
    cpu_ratios = [
        (plain["server_cpu"] / plain["per_socket_per_s"]) / (ours["server_cpu"] / ours["per_socket_per_s"])
        for ours, plain, _ in runs
    ]
    middle = _median_round(ratios)
    ours, plain, raw = runs[middle]
    rate, base, ratio = ours["per_socket_per_s"], plain["per_socket_per_s"], ratios[middle]
    mark = "✅" if ratio >= target else "❌"
    return (
        f"| {name} | {rate:,.0f} | ÷ plain M4 | {base:,.0f} | {ratio:.2f} | ≥ {target} ÷ M4 {mark} "
        f"| rounds {_rounds(ratios)}; readings per server CPU second {median_low(cpu_ratios):.2f}"
        f" × plain M4's (rounds {_rounds(cpu_ratios)}); ÷ raw executemany {rate / raw:.2f}; "
        f"server CPU {ours['server_cpu']:.0%} (waited for a CPU {ours['server_wait']:.0%}), "
        f"client CPU {ours['client_cpu']:.0%} |"
    )


def run(rounds: int = ROUNDS) -> str:
    """Measure both sides on SQLite (`rounds` times, alternating plain M4, the raw baseline and each variant, so
    that a slow spell of this shared machine lands on one round, not on one side; the variants' order flips every
    other round), the paired in-process cross-check,
    then PostgreSQL once; returns the markdown table."""
    load_before = os.getloadavg()
    plain_runs: list[tuple[dict[str, Any], float]] = []
    variant_runs: list[list[tuple[dict[str, Any], dict[str, Any], float]]] = [[] for _ in VARIANTS]
    with tempfile.TemporaryDirectory(prefix="haltless-bench-ingest-") as tmp:
        for round_ in range(rounds):
            ours, body = measure_ours(Path(tmp) / f"ours-{round_}", duration=ROUND_SECONDS)
            raw = on_server_cpu_run(lambda: raw_rate(Path(tmp) / f"raw-{round_}.db", [body]))  # noqa: B023
            plain_runs.append((ours, raw))
            # Every other round takes the variants in reverse: the one run last drifts furthest from its plain run.
            order = list(enumerate(VARIANTS))
            for index, (_name, configure, _target) in order if round_ % 2 == 0 else order[::-1]:
                variant, _ = measure_ours(
                    Path(tmp) / f"variant-{index}-{round_}", configure=configure, duration=ROUND_SECONDS
                )
                variant_runs[index].append((variant, ours, raw))
    rows = [_row("M4 ingest, SQLite: POST → validate → store → rules → broadcast", plain_runs, "executemany")]
    for (name, _configure, target), runs in zip(VARIANTS, variant_runs, strict=True):
        rows.append(_variant_row(name, runs, target))
    plain_cpu, anomaly_cpu = profile_ingest.paired_cost(300)
    rows.append(
        f"| the same, in-process and paired: CPU a batch, plain ÷ with anomaly rules | {anomaly_cpu * 1000:.2f} ms "
        f"| plain batch | {plain_cpu * 1000:.2f} ms | {plain_cpu / anomaly_cpu:.2f} | ≥ 0.9 (a cross-check) "
        "| bench.profile_ingest --paired: one pipeline, two tenants' batches in turn, process CPU (event loop and "
        "SQLite's thread) without HTTP or sockets, whose cost both sides share; steadier than the rates above; "
        f"the anomaly detector {detector_build()} |"
    )
    reason = postgres.unreachable()
    if reason is not None:
        rows.append(f"| M4 ingest, PostgreSQL | skipped: {reason} | | | | | |")
    else:
        with tempfile.TemporaryDirectory(prefix="haltless-bench-ingest-pg-") as tmp:
            with postgres.throwaway_database() as database:
                ours, body = measure_ours(Path(tmp) / "ours", postgres.sqlalchemy_url(database))
            with postgres.throwaway_database() as database:
                raw = on_server_cpu_run(lambda: copy_rate(database, [body]))
        rows.append(_row("M4 ingest, PostgreSQL: the same path, COPY inside", [(ours, raw)], "asyncpg COPY"))
    return "\n".join(
        [
            f"Load average (1 min) {load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after; {BATCH}-reading "
            f"POSTs, 3 alert rules, {SOCKETS} sockets; raw baselines pinned to the server's CPU, one transaction per "
            f"{BATCH} rows; on SQLite {rounds} rounds of {ROUND_SECONDS:.0f} s, each plain M4, its raw baseline and "
            "every variant back to back (the variants' order flipping every other round), each row the median "
            "round (all rounds in its notes). PostgreSQL runs once, "
            "unpinned, with its own settings, for both sides.",
            "",
            "| case | ours (readings/s) | raw | raw (rows/s) | ours ÷ raw | target | notes |",
            "|---|---:|---|---:|---:|---|---|",
            *rows,
        ]
    )


if __name__ == "__main__":
    print(run())

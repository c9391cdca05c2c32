"""A fleet written straight into a migrated database before the server starts: tenants, machines, rules, readings.

The growth benches need hundreds of tenants, thousands of machines, a thousand rules and millions of readings;
creating them through the API would take longer than measuring. Rows go in through the store's own tables
(and `accounts.create_tenant` / `alerts.rule_values`), so they are what the API would have written. Rules
never fire (thresholds far above every value sent); machines start `offline`, as new ones do.
"""

from __future__ import annotations

import secrets
import sqlite3
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from bench.fanout import access_token
from haltless.core.credentials import hash_password
from haltless.core.rules import Condition, Rule, Severity
from haltless.store import accounts
from haltless.store.alerts import rule_values
from haltless.store.database import create_engine, migrate
from haltless.store.tables import alert_rules, machines

# (metric, unit, typical value): every reading sent stays near its typical value, every rule far above it.
METRICS = (
    ("temperature", "celsius", 70.0),
    ("vibration", "mm/s", 4.0),
    ("current", "A", 12.0),
    ("pressure", "bar", 6.0),
    ("speed", "rpm", 1500.0),
)
QUIET_THRESHOLD = 1e9
# A fixed start for generated history, so runs are comparable: 2026-03-02T00:00:00Z.
HISTORY_START_US = 1_772_409_600_000_000


@dataclass(frozen=True)
class SeededTenant:
    tenant_id: str
    token: str
    machine_ids: list[str]


async def seed(
    database_url: str,
    secret: str,
    *,
    tenants: int,
    machines_per_tenant: int,
    metrics: int,
    rules_per_tenant: int,
) -> list[SeededTenant]:
    """Migrate, then write the fleet; returns each tenant with an admin's access token and its machine ids."""
    engine = create_engine(database_url)
    await migrate(engine)
    password_hash = hash_password(secrets.token_hex(8))  # one hash for all: hashing is slow on purpose
    made: list[SeededTenant] = []
    async with engine.begin() as conn:
        for t in range(tenants):
            tenant_id, user_id = await accounts.create_tenant(
                conn, name=f"bench {t}", email=f"admin{t}@bench.local", password_hash=password_hash, now=0
            )
            machine_ids = [str(uuid.uuid4()) for _ in range(machines_per_tenant)]
            await conn.execute(
                machines.insert(),
                [
                    {
                        "id": machine_id,
                        "tenant_id": tenant_id,
                        "name": f"Press {m}",
                        "location": None,
                        "tags": [],
                        "status": "offline",
                        "maintenance": False,
                        "last_seen_at": None,
                        "created_at": 0,
                    }
                    for m, machine_id in enumerate(machine_ids)
                ],
            )
            rules = [
                Rule(
                    id=str(uuid.uuid4()),
                    tenant_id=tenant_id,
                    name=f"rule {r}",
                    metric_name=METRICS[r % metrics][0],
                    machine_id=None,
                    condition=Condition.GT,
                    threshold=QUIET_THRESHOLD + r,
                    severity=Severity.WARNING,
                    for_seconds=0.0,
                    hysteresis=0.0,
                    enabled=True,
                    message=None,
                )
                for r in range(rules_per_tenant)
            ]
            if rules:
                await conn.execute(
                    alert_rules.insert(), [{**rule_values(rule), "created_at": 0, "updated_at": 0} for rule in rules]
                )
            made.append(SeededTenant(tenant_id, access_token(secret, tenant_id, user_id), machine_ids))
    await engine.dispose()
    return made


def series_bodies(machine_ids: Sequence[str], metrics: int, batch: int) -> list[str]:
    """POST bodies of `batch` readings that walk the fleet's series (machine × metric) round-robin.

    As many bodies as it takes to come back to the first series at the start of a body, so posting them in
    turn sends every series equally often: 40 series give 2 bodies, 400 give 4, 5,000 give 10.
    """
    series = [(machine_id, METRICS[k]) for machine_id in machine_ids for k in range(metrics)]
    bodies: list[str] = []
    position = 0
    while True:
        readings = []
        for i in range(batch):
            machine_id, (metric, unit, base) = series[(position + i) % len(series)]
            readings.append(
                {"machine_id": machine_id, "metric_name": metric, "value": base + (i % 7) * 0.1, "unit": unit}
            )
        bodies.append(orjson.dumps({"readings": readings}).decode())
        position = (position + batch) % len(series)
        if position == 0:
            return bodies


def add_history(path: Path, tenant: SeededTenant, metrics: int, *, first_second: int, seconds: int) -> None:
    """Readings of every (machine, metric) once a second over `seconds`, by SQL alone (fast: no Python per row).

    Written in arrival order (time-major), as a live fleet writes them, into the SQLite file's readings table
    with its indexes in place. `first_second` counts from HISTORY_START_US, so a second call extends the history.
    """
    db = sqlite3.connect(path, timeout=30)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=OFF")  # a generated fixture: nothing to lose
        db.execute("CREATE TEMP TABLE bench_machines (k INTEGER, id TEXT)")
        db.executemany("INSERT INTO bench_machines VALUES (?, ?)", list(enumerate(tenant.machine_ids)))
        db.execute("CREATE TEMP TABLE bench_metrics (k INTEGER, name TEXT, unit TEXT, base REAL)")
        db.executemany(
            "INSERT INTO bench_metrics VALUES (?, ?, ?, ?)",
            [(k, name, unit, base) for k, (name, unit, base) in enumerate(METRICS[:metrics])],
        )
        chunk = 100_000  # seconds per transaction
        for start in range(first_second, first_second + seconds, chunk):
            last = min(first_second + seconds, start + chunk) - 1
            with db:
                db.execute(
                    """
                    WITH RECURSIVE second(n) AS (SELECT ? UNION ALL SELECT n + 1 FROM second WHERE n < ?)
                    INSERT INTO readings (tenant_id, machine_id, metric_name, value, unit, ts, received_at)
                    SELECT ?, m.id, x.name, x.base + ((second.n * 7 + m.k * 13 + x.k) % 100) / 10.0, x.unit,
                           ? + second.n * 1000000, ? + second.n * 1000000
                    FROM second, bench_machines AS m, bench_metrics AS x
                    """,
                    (start, last, tenant.tenant_id, HISTORY_START_US, HISTORY_START_US),
                )
        db.execute("ANALYZE")
    finally:
        db.close()

"""Where a 500-reading batch's time goes on the event loop's thread: the ingest pipeline called in-process.

    python -m bench.profile_ingest [--backend sqlite|postgresql] [--anomaly | --paired] [--batches N] [--profile]

No HTTP and no sockets: the M4 body (10 machines × 3 metrics, three quiet threshold rules, optionally an anomaly
rule on every series) goes straight into `IngestPipeline.ingest_body`, batch after batch, and the CPU time of
this thread (`time.thread_time`) is divided by the batches. The database's own threads are not counted, so
the figure is the event loop's share, the part M4's ratio rests on (docs/benchmarks.md). `--profile [tottime|cumtime]`
prints cProfile's view of the same loop, which is how the step-by-step tables there are made. Not part of `make bench`.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import functools
import importlib
import inspect
import pstats
import secrets
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from bench import fleet as seeded
from bench import postgres
from bench.fanout import METRICS, reading_body
from haltless.bus.memory import MemoryBus
from haltless.core.anomaly import Sensitivity
from haltless.core.clock import ManualClock
from haltless.core.plan import Plan
from haltless.core.planners import rules as rule_planner
from haltless.core.rules import Condition, Rule, RuleKind, Severity
from haltless.server.service.changes import Changes
from haltless.server.service.ingest import IngestPipeline
from haltless.settings import Settings
from haltless.store import alerts as alert_store
from haltless.store.database import create_engine

START_US = 1_800_000_000_000_000
Ingest = Callable[[], Awaitable[None]]

# (module, attribute) of each step `--steps` times; async ones are timed across their awaits (one task runs).
STEPS = (
    ("haltless.server.service.ingest", "decode_valid_batch"),
    ("haltless.server.service.units", "UnitBook.check"),
    ("haltless.server.service.ingest", "plan_readings"),
    ("haltless.core.wire", "sensor_updates"),
    ("haltless.core.predictive", "settle"),
    ("haltless.server.service.changes", "Change.prepare_detectors"),
    ("haltless.server.service.changes", "Changes._persist"),
    ("haltless.store.readings", "insert_many"),
    ("haltless.store.machines", "mark_seen"),
    ("haltless.store.alerts", "save_rule_states"),
    ("haltless.core.fleet", "Fleet.apply"),
    ("haltless.bus.memory", "MemoryBus.publish"),
    ("haltless.core.event_ids", "with_sequential_ids"),
)


_USERS = ("haltless.bus.memory", "haltless.core.planners.readings", "haltless.server.service.ingest")


def _timed_steps() -> dict[str, float]:
    """Wrap each of STEPS so it adds its thread CPU time to the returned totals (seconds)."""
    totals: dict[str, float] = {}
    for module_name, attribute in STEPS:
        owner: Any = importlib.import_module(module_name)
        *path, name = attribute.split(".")
        for part in path:
            owner = getattr(owner, part)
        original = getattr(owner, name)
        totals[attribute] = 0.0
        setattr(owner, name, _timed(original, attribute, totals))
    # Modules that imported a step by name call it through their own binding: point those at the wrapper too.
    for module_name, attribute in STEPS:
        if "." not in attribute:
            wrapper = getattr(importlib.import_module(module_name), attribute)
            for user in _USERS:
                module = importlib.import_module(user)
                if getattr(module, attribute, None) is wrapper.__wrapped__:
                    setattr(module, attribute, wrapper)
    return totals


def _timed(original: Any, label: str, totals: dict[str, float]) -> Any:
    if inspect.iscoroutinefunction(original):

        @functools.wraps(original)
        async def timed_async(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return await original(*args, **kwargs)
            finally:
                totals[label] += time.thread_time() - started

        return timed_async

    @functools.wraps(original)
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return original(*args, **kwargs)
        finally:
            totals[label] += time.thread_time() - started

    return timed


async def _add_anomaly_rules(changes: Changes, tenant_id: str) -> None:
    """An anomaly rule (medium) on each metric of the M4 body, for every machine, as bench.ingest's variant."""
    for metric, _unit, _base in METRICS:
        sensitivity = Sensitivity.MEDIUM
        rule = Rule(
            id=alert_store.new_id(),
            tenant_id=tenant_id,
            name=f"{metric} unusual",
            metric_name=metric,
            machine_id=None,
            condition=Condition.GE,
            threshold=sensitivity.threshold,
            severity=Severity.WARNING,
            for_seconds=0.0,
            hysteresis=0.0,
            enabled=True,
            message=None,
            kind=RuleKind.ANOMALY,
            sensitivity=sensitivity.value,
        )
        async with changes.for_tenant(tenant_id, (), refresh=False) as tx:
            plan: Plan = rule_planner.plan_create(tx.fleet, rule, tx.now_us)
            tx.apply(plan)


async def _pipeline(url: str, tenants: int) -> tuple[AsyncEngine, Changes, list[tuple[str, Ingest]]]:
    """The engine, the changes and, per seeded tenant, its id and a function that ingests one M4 body for it."""
    seeded_tenants = await seeded.seed(
        url, secrets.token_hex(16), tenants=tenants, machines_per_tenant=10, metrics=3, rules_per_tenant=3
    )
    engine = create_engine(url)
    clock = ManualClock(START_US)
    bus = MemoryBus(10_000)
    bus.subscribe(lambda _tenant_id, _events: None)
    changes = Changes(engine, bus, clock, offline_after=60, shared=False)  # one process, the memory bus: as M4 runs
    await changes.load()
    pipeline = IngestPipeline(Settings(), changes)

    def ingest(tenant_id: str, body: bytes) -> Ingest:
        async def one() -> None:
            clock.advance(1.0)
            result = await pipeline.ingest_body(tenant_id, body, clock.now_us())
            assert result.accepted == 500, result

        return one

    return (
        engine,
        changes,
        [(t.tenant_id, ingest(t.tenant_id, reading_body(t.machine_ids, 500).encode())) for t in seeded_tenants],
    )


async def _run(url: str, *, anomaly: bool, batches: int, profile: str | None, steps: bool) -> None:
    engine, changes, ((tenant_id, one),) = await _pipeline(url, 1)
    if anomaly:
        await _add_anomaly_rules(changes, tenant_id)
    for _ in range(max(20, batches // 10)):  # warm-up: caches, detectors past their warm-up, WAL
        await one()
    totals = _timed_steps() if steps else None
    profiler = cProfile.Profile() if profile is not None else None
    wall, cpu = time.perf_counter(), time.thread_time()
    if profiler is not None:
        profiler.enable()
    for _ in range(batches):
        await one()
    if profiler is not None:
        profiler.disable()
    cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
    await engine.dispose()
    print(
        f"{url.split(':')[0]}{' + anomaly' if anomaly else ''}: {batches} batches, loop thread CPU "
        f"{cpu / batches * 1000:.2f} ms a batch, wall {wall / batches * 1000:.2f} ms a batch"
    )
    if totals is not None:
        for label, seconds in totals.items():
            print(f"  {label:<24} {seconds / batches * 1000:6.3f} ms a batch")
    if profiler is not None:
        pstats.Stats(profiler).sort_stats(profile or "tottime").print_stats(60)


async def _paired(url: str, batches: int) -> tuple[float, float]:
    """Process CPU seconds a batch (the event loop and the database's threads) of plain M4 and of M4 with an
    anomaly rule on every series: two tenants of one pipeline, their batches taken in turn, so that a slow spell
    of the machine falls on both alike."""
    engine, changes, ((_, plain), (tenant_id, anomalous)) = await _pipeline(url, 2)
    await _add_anomaly_rules(changes, tenant_id)
    for _ in range(max(20, batches // 10)):
        await plain()
        await anomalous()
    spent = [0.0, 0.0]
    for _ in range(batches):
        for index, one in enumerate((plain, anomalous)):
            started = time.process_time()
            await one()
            spent[index] += time.process_time() - started
    await engine.dispose()
    return spent[0] / batches, spent[1] / batches


def paired_cost(batches: int = 400) -> tuple[float, float]:
    """(plain, with an anomaly rule on every series): process CPU seconds a 500-reading batch on SQLite, the two
    kinds of batch taken in turn (`_paired`)."""
    with tempfile.TemporaryDirectory() as tmp:
        return asyncio.run(_paired(f"sqlite+aiosqlite:///{Path(tmp) / 'paired.db'}", batches))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--anomaly", action="store_true")
    parser.add_argument(
        "--paired", action="store_true", help="plain and anomaly batches in turn: process CPU a batch of each"
    )
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--steps", action="store_true", help="time each step of STEPS (slightly inflated)")
    parser.add_argument("--profile", nargs="?", const="tottime", choices=("tottime", "cumtime"))
    args = parser.parse_args()
    if args.paired:
        plain, anomalous = paired_cost(args.batches)
        print(
            f"paired, {args.batches} batches each: process CPU {plain * 1000:.2f} ms a plain batch, "
            f"{anomalous * 1000:.2f} ms with an anomaly rule on every series; plain ÷ anomaly {plain / anomalous:.3f}"
        )
        return
    with tempfile.TemporaryDirectory() as tmp:
        if args.backend == "sqlite":
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'profile.db'}"
            asyncio.run(_run(url, anomaly=args.anomaly, batches=args.batches, profile=args.profile, steps=args.steps))
        else:
            with postgres.throwaway_database() as database:
                url = postgres.sqlalchemy_url(database)
                asyncio.run(
                    _run(url, anomaly=args.anomaly, batches=args.batches, profile=args.profile, steps=args.steps)
                )


if __name__ == "__main__":
    main()

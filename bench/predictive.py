"""Predictive rules: CPU cost per reading per series on one core of each rule kind's decision, through the code the
server calls per reading (core/predictive.py `evaluate`, core/rules.py `evaluate` for threshold rules), in batches
of 12 readings; and the cost of rebuilding a detector from stored history (after a restart, or when another server
process evaluated the series' last batch)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

from bench import series
from haltless.core import predictive
from haltless.core.fleet import Fleet
from haltless.core.health import MachineHealth
from haltless.core.models import MachineStatus
from haltless.core.planners.readings import plan_readings
from haltless.core.readings import Reading
from haltless.core.rules import Rule, RuleKind, RuleState, evaluate
from haltless.store.alerts import new_id

READINGS = 24_000
BATCH = 12
PERIOD_US = 1_000_000
REBUILDS = 20


def _per_reading(
    step: Callable[[int, float, bool], None], values: list[float], batch: Callable[[int], None] | None = None
) -> float:
    began = time.process_time()
    for index, value in enumerate(values):
        if batch is not None and index % BATCH == 0:
            batch(index)
        step(index, value, index % BATCH == BATCH - 1)
    return (time.process_time() - began) / len(values)


def _threshold(values: list[float]) -> float:
    rule = series.rule(RuleKind.THRESHOLD)
    ids = (str(n) for n in itertools.count())
    state = [RuleState()]

    def step(index: int, value: float, _newest: bool) -> None:
        state[0], _ = evaluate(rule, state[0], value, index * PERIOD_US, lambda: next(ids))

    return _per_reading(step, values)


def _predictive(rule: Rule, values: list[float]) -> float:
    detector = predictive.new_detector(rule)
    ids = (str(n) for n in itertools.count())
    state = [RuleState()]

    settled = [False]

    def batch(start: int) -> None:
        # As the server does: a batch of the series is settled at once when it changes nothing (the usual
        # batch), else decided reading by reading.
        stamps = [i * PERIOD_US for i in range(start, start + BATCH)]
        after = predictive.settle(rule, detector, state[0], stamps, values[start : start + BATCH])
        settled[0] = after is not None
        if after is not None:
            state[0] = after

    def step(index: int, value: float, newest: bool) -> None:
        if not settled[0]:
            state[0], _ = predictive.evaluate(
                rule, detector, state[0], value, index * PERIOD_US, lambda: next(ids), newest_of_batch=newest
            )

    return _per_reading(step, values, batch)


def _rebuild(rule: Rule, values: list[float]) -> float:
    needed = predictive.history_needed(rule)
    stamps = [i * PERIOD_US for i in range(needed)]
    began = time.process_time()
    for _ in range(REBUILDS):
        predictive.rebuild(rule, stamps, values[:needed], stamps[-1])
    return (time.process_time() - began) / REBUILDS


MACHINES = 100
PER_SERIES = 5  # readings per machine per batch: 500-reading batches, as bench ingest (M4) sends
PLAN_BATCHES = 170
PLAN_WARMUP_BATCHES = 70  # past the anomaly detectors' warm-up (300 readings)


def _plan_cost(extra: Rule | None) -> float:
    """CPU per reading of planning 500-reading batches (core.planners.readings, no database) with a threshold rule
    that never fires on every series, and `extra` on every series too."""
    fleet = Fleet(series.TENANT, 60_000_000)
    machines = [f"machine-{i:03d}" for i in range(MACHINES)]
    for machine_id in machines:
        fleet.health[machine_id] = MachineHealth(machine_id, series.TENANT, MachineStatus.OFFLINE)
    fleet.add_rule(series.rule(RuleKind.THRESHOLD, threshold=1000.0))
    if extra is not None:
        fleet.add_rule(extra)
    values = iter(series.noise(PLAN_BATCHES * PER_SERIES * MACHINES, seed=2))
    ts, spent, counted = 0, 0.0, 0
    for number in range(PLAN_BATCHES):
        batch: list[Reading] = []
        for _ in range(PER_SERIES):
            ts += PERIOD_US
            batch.extend(Reading(0, m, series.METRIC, next(values), "celsius", ts, None) for m in machines)
        began = time.process_time()
        fleet.apply(plan_readings(fleet, batch, ts, new_id))
        if number >= PLAN_WARMUP_BATCHES:
            spent += time.process_time() - began
            counted += len(batch)
    return spent / counted


def run() -> str:
    values = series.wave(READINGS, seed=1)
    anomaly = series.rule(RuleKind.ANOMALY, sensitivity="medium")
    forecast = series.rule(RuleKind.FORECAST, horizon_seconds=3600.0)
    forecast_1024 = series.rule(RuleKind.FORECAST, horizon_seconds=3600.0, window_readings=1024)
    rows = [
        ("threshold", _threshold(values), None),
        ("anomaly (medium)", _predictive(anomaly, values), _rebuild(anomaly, values)),
        ("forecast (window 128)", _predictive(forecast, values), _rebuild(forecast, values)),
        ("forecast (window 1024)", _predictive(forecast_1024, values), _rebuild(forecast_1024, values)),
    ]
    anomaly_extra = series.rule(RuleKind.ANOMALY, id="a", sensitivity="medium")
    forecast_extra = series.rule(RuleKind.FORECAST, id="f", horizon_seconds=3600.0)
    plans = [
        ("threshold rule only", _plan_cost(None)),
        ("+ anomaly rule", _plan_cost(anomaly_extra)),
        ("+ forecast rule (window 128)", _plan_cost(forecast_extra)),
    ]
    lines = [
        "| rule kind | CPU per reading per series | rebuild from history |",
        "|---|---:|---:|",
    ]
    for name, cost, rebuild in rows:
        rebuilt = "–" if rebuild is None else f"{rebuild * 1e3:.2f} ms"
        lines.append(f"| {name} | {cost * 1e6:.2f} µs | {rebuilt} |")
    lines += [
        "",
        f"| planning {MACHINES * PER_SERIES}-reading batches ({MACHINES} machines × {PER_SERIES}), every series with | "
        "CPU per reading |",
        "|---|---:|",
    ]
    lines += [f"| {name} | {cost * 1e6:.2f} µs |" for name, cost in plans]
    return (
        "\n".join(lines)
        + f"\n\n{READINGS} readings per kind, {BATCH} per batch (a forecast is refitted once per batch), one core"
        + " (`time.process_time`). Rebuild: the anomaly detector replays its last 2000 readings, a forecast its"
        + " window; a process rebuilds after a restart, or when another process evaluated the series' last batch."
        + " Planning: `plan_readings` (core/planners) without the database, after the warm-up; the whole ingest"
        + " path of a reading (HTTP, validation, insert, publish) costs ~20–25 µs more."
    )

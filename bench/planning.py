"""`python -m bench planning`: what planning a 500-reading batch costs as a tenant's rules grow, in-process.

The pure planner alone (`plan_readings` and `Fleet.apply`, no database, no HTTP), on the M4 body's shape: 500
readings of 10 machines × 3 metrics, values that breach nothing. The tenant has 100 machines and its rules are
laid out four ways, each row a ratio to the first:
- 3 rules, one per metric, on every machine (M4's own);
- 1,000 rules bound to one machine each (10 per machine): a batch's series meet 100 of them;
- the same 1,000 bound rules planned without `Fleet.series_rules` keeping its answers (each series' rules
  picked out of all the metric's rules and arranged by threshold, batch after batch), side by side;
- 1,000 rules on every machine: a batch's series meet all of them, 10,000 (rule, machine) pairs.
Half the rules are `>` a threshold, half `<` one, all different, none ever breached.
Opt-in (not part of `make bench`): it shows one planner's growth, in seconds.
"""

from __future__ import annotations

import itertools
import os
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager

from haltless.core.fleet import Fleet
from haltless.core.health import MachineHealth
from haltless.core.models import MachineStatus
from haltless.core.planners.readings import plan_readings
from haltless.core.readings import Reading
from haltless.core.rules import Condition, Rule, SeriesRules, Severity

TENANT = "tenant"
MACHINES = tuple(f"machine-{n:03}" for n in range(100))
METRICS = ("temperature", "vibration", "current")
BATCH = 500
BATCH_MACHINES = 10
BATCHES = 40
ROUNDS = 3
START_US = 1_800_000_000_000_000


def quiet_rule(rule_id: str, tenant_id: str, n: int, machine_id: str | None = None) -> Rule:
    """The n-th of a tenant's rules that never fire, on the metrics in turn: even n `>` 1e9 + n, odd n `<` -1e9 - n
    (all thresholds different, none ever breached). Shared with `bench shared`."""
    above = n % 2 == 0
    return Rule(
        id=rule_id,
        tenant_id=tenant_id,
        name=f"rule {n}",
        metric_name=METRICS[n % len(METRICS)],
        machine_id=machine_id,
        condition=Condition.GT if above else Condition.LT,
        threshold=1e9 + n if above else -1e9 - n,
        severity=Severity.WARNING,
        for_seconds=0.0,
        hysteresis=0.0,
        enabled=True,
        message=None,
    )


def _fleet(rules: int, bound: bool) -> Fleet:
    fleet = Fleet(TENANT, 10**15)
    for machine_id in MACHINES:
        fleet.health[machine_id] = MachineHealth(machine_id, TENANT, MachineStatus.HEALTHY)
    for n in range(rules):
        bound_to = MACHINES[(n // len(METRICS)) % len(MACHINES)] if bound else None
        fleet.add_rule(quiet_rule(f"rule-{n}", TENANT, n, bound_to))
    return fleet


@contextmanager
def _picked_per_batch(fleet: Fleet) -> Iterator[None]:
    """Plan as before `Fleet.series_rules` kept its answers: every series' rules picked out again each batch."""

    def picked(machine_id: str, metric_name: str) -> SeriesRules:
        return SeriesRules(rule for rule in fleet.index.get(metric_name, ()) if rule.applies_to(machine_id))

    fleet.series_rules = picked  # type: ignore[method-assign]
    try:
        yield
    finally:
        del fleet.series_rules


def _ms_a_batch(fleet: Fleet) -> float:
    """Thread CPU milliseconds per batch, planning and applying BATCHES batches after a warm-up one."""
    ids = (f"alert-{n}" for n in itertools.count())
    spent = 0.0
    for number in range(BATCHES + 1):
        at = START_US + number * 1_000_000
        batch = [
            Reading(i, MACHINES[i % BATCH_MACHINES], METRICS[i % len(METRICS)], 50.0 + i % 7, "u", at + i, None)
            for i in range(BATCH)
        ]
        started = time.thread_time()
        plan = plan_readings(fleet, batch, at + BATCH, ids.__next__)
        fleet.apply(plan)
        if number:
            spent += time.thread_time() - started
        if plan.alert_transitions:
            raise AssertionError("a quiet batch opened an alert")
    return spent / BATCHES * 1000


def run() -> str:
    cases = (
        ("3 rules on every machine", 3, False, False),
        ("1,000 rules, each on one machine", 1000, True, False),
        ("the same, picked per batch (before)", 1000, True, True),
        ("1,000 rules on every machine", 1000, False, False),
    )
    load_before = os.getloadavg()
    rounds: dict[str, list[float]] = {label: [] for label, *_ in cases}
    for _ in range(ROUNDS):  # cases in turn, so a slow spell of the machine falls on all of them alike
        for label, rules, bound, before in cases:
            fleet = _fleet(rules, bound)
            if before:
                with _picked_per_batch(fleet):
                    rounds[label].append(_ms_a_batch(fleet))
            else:
                rounds[label].append(_ms_a_batch(fleet))
    first = statistics.median(rounds[cases[0][0]])
    lines = [
        f"Load average (1 min) {load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after, on {os.cpu_count()} "
        f"CPUs. {BATCH}-reading batches of {BATCH_MACHINES} machines × {len(METRICS)} metrics, a tenant of "
        f"{len(MACHINES)} machines; thread CPU of `plan_readings` and `Fleet.apply`, median of {ROUNDS} rounds "
        f"of {BATCHES} batches (cases in turn).",
        "",
        "| rules | (rule, machine) pairs a batch meets | ms a batch | ÷ first row | rounds |",
        "|---|---:|---:|---:|---|",
    ]
    pairs = {3: 30, 1000: 100}
    for label, rules, bound, _ in cases:
        median = statistics.median(rounds[label])
        met = pairs[rules] if bound or rules == 3 else rules * BATCH_MACHINES
        lines.append(
            f"| {label} | {met:,} | {median:.2f} | {median / first:.2f} | "
            f"{', '.join(f'{value:.2f}' for value in rounds[label])} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(run())

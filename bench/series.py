"""Synthetic sensor series and rules for the predictive detectors, shared by their benchmark (bench/predictive.py)
and their tests (tests/core/test_predictive.py). Seeded: the same arguments give the same values every run."""

from __future__ import annotations

import random
from typing import Any

from haltless.core.rules import Condition, Rule, RuleKind, Severity

TENANT = "tenant"
METRIC = "bearing_temperature"
LEVEL = 60.0  # the healthy reading, °C
SPREAD = 0.5  # its noise, standard deviation


def rule(kind: RuleKind, **overrides: Any) -> Rule:
    """A rule on METRIC above 90, warning; anomaly rules at medium sensitivity, forecasts with a 1 h horizon."""
    fields: dict[str, Any] = {
        "id": "rule",
        "tenant_id": TENANT,
        "name": "watch",
        "metric_name": METRIC,
        "machine_id": None,
        "condition": Condition.GT,
        "threshold": 90.0,
        "severity": Severity.WARNING,
        "for_seconds": 0.0,
        "hysteresis": 0.0,
        "enabled": True,
        "message": None,
        "kind": kind,
    }
    if kind is RuleKind.ANOMALY:
        fields["sensitivity"] = "medium"
    if kind is RuleKind.FORECAST:
        fields["horizon_seconds"] = 3600.0
    fields.update(overrides)
    return Rule(**fields)


def noise(count: int, seed: int) -> list[float]:
    """A healthy machine: LEVEL with gaussian noise."""
    rng = random.Random(seed)
    return [LEVEL + rng.gauss(0.0, SPREAD) for _ in range(count)]


def drift(count: int, *, per_hour: float, period_us: int, seed: int) -> list[float]:
    """Noise on a line rising `per_hour` degrees an hour, one reading every `period_us`."""
    rng = random.Random(seed)
    return [LEVEL + rng.gauss(0.0, SPREAD) + i * period_us / 3.6e9 * per_hour for i in range(count)]


def wave(count: int, *, seed: int) -> list[float]:
    """Noise on a slow sawtooth of 2 degrees every 3,600 readings: detectors do their usual work, a few alerts open
    and close."""
    rng = random.Random(seed)
    return [LEVEL + 2.0 * ((i % 3600) / 3600) + rng.gauss(0.0, SPREAD) for i in range(count)]

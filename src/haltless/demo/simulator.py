"""I/O-free simulated machines: plausible readings with noise, and slow degradation on some machines."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class MetricProfile:
    name: str
    unit: str
    baseline: float
    noise: float
    # How far the metric rises over one degradation cycle (a worn bearing heats up and shakes).
    degradation: float


METRICS: tuple[MetricProfile, ...] = (
    MetricProfile("temperature", "celsius", 62.0, 0.8, 30.0),
    MetricProfile("vibration", "mm_per_s", 2.2, 0.15, 6.0),
    MetricProfile("spindle_speed", "rpm", 1450.0, 6.0, -120.0),
    MetricProfile("current", "ampere", 11.5, 0.25, 4.0),
)


@dataclass(slots=True)
class SimulatedMachine:
    """One machine; `degrading` machines drift towards warning and critical levels, then get 'repaired'."""

    machine_id: str
    degrading: bool
    cycle_seconds: float = 150.0
    rng: random.Random = field(default_factory=random.Random)
    phase: float = 0.0

    def sample(self, elapsed: float) -> list[tuple[str, float, str]]:
        """(metric, value, unit) for every metric at `elapsed` seconds since the start."""
        wear = 0.0
        if self.degrading:
            # Saw-tooth: wear grows from 0 to 1 over a cycle, then a repair resets it.
            wear = ((elapsed + self.phase) % self.cycle_seconds) / self.cycle_seconds
            wear = wear**2
        values = []
        for metric in METRICS:
            wave = math.sin((elapsed + self.phase) / 30.0) * metric.noise
            value = metric.baseline + wave + self.rng.gauss(0.0, metric.noise) + wear * metric.degradation
            values.append((metric.name, round(value, 3), metric.unit))
        return values


def build_fleet(machine_ids: list[str], seed: int = 7, cycle_seconds: float = 150.0) -> list[SimulatedMachine]:
    """Every third machine degrades over `cycle_seconds`. The first starts 70% into its wear cycle, so with
    the default cycle a warning shows within about 15 s and a critical alert within about 40 s; the other
    degrading machines are staggered a quarter cycle apart so alerts do not all fire at once."""
    rng = random.Random(seed)
    fleet = []
    for index, machine_id in enumerate(machine_ids):
        degrading = index % 3 == 0
        phase = ((0.7 - 0.25 * (index // 3)) % 1.0) * cycle_seconds if degrading else rng.uniform(0, cycle_seconds)
        fleet.append(
            SimulatedMachine(
                machine_id=machine_id,
                degrading=degrading,
                cycle_seconds=cycle_seconds,
                rng=random.Random(rng.random()),
                phase=phase,
            )
        )
    return fleet

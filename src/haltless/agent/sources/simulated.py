"""The simulated fleet of `haltless demo` as an agent source: to try the agent without sensors."""

from __future__ import annotations

import asyncio

from haltless.agent.captured import CapturedReading, new_reading_id, now_micros
from haltless.agent.config import SimulatorSourceConfig
from haltless.agent.sources import Emit, SourceError
from haltless.agent.sources.machines import MachineDirectory
from haltless.demo.simulator import build_fleet

# What one pass means for `--once` when the config sets no `samples`.
ONCE_SAMPLES = 1


class SimulatorSource:
    """One reading per metric per machine every `interval` seconds; finite when `samples` is set."""

    def __init__(self, config: SimulatorSourceConfig, machines: MachineDirectory, *, once: bool) -> None:
        self.name = config.name
        self._config = config
        self._samples = config.samples if config.samples is not None else (ONCE_SAMPLES if once else None)
        self.finite = self._samples is not None
        ids = []
        for name in config.machines:
            machine_id = machines.resolve(name)
            if machine_id is None:
                raise SourceError(f"{self.name}: machine {name!r} is neither a UUID nor listed under [machines]")
            ids.append(machine_id)
        self._ids = ids

    async def run(self, emit: Emit) -> None:
        """Sample the fleet on a fixed schedule."""
        fleet = build_fleet(self._ids, seed=self._config.seed, cycle_seconds=self._config.cycle_seconds)
        loop = asyncio.get_running_loop()
        started = loop.time()
        tick = 0
        while self._samples is None or tick < self._samples:
            elapsed = tick * self._config.interval
            at = now_micros()
            await emit(
                [
                    CapturedReading(new_reading_id(), machine.machine_id, metric, value, unit, at)
                    for machine in fleet
                    for metric, value, unit in machine.sample(elapsed)
                ]
            )
            tick += 1
            if self._samples is None or tick < self._samples:
                await asyncio.sleep(max(0.0, started + tick * self._config.interval - loop.time()))

"""Wires sources → buffer → uplink and runs them, forever or for one pass (`--once`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass

import httpx

from haltless import __version__
from haltless.agent.buffer import ReadingBuffer
from haltless.agent.captured import CapturedReading
from haltless.agent.config import (
    AgentConfig,
    CsvSourceConfig,
    ModbusSourceConfig,
    MqttSourceConfig,
    OpcUaSourceConfig,
    SimulatorSourceConfig,
)
from haltless.agent.sources import Emit, Source
from haltless.agent.sources.csv_replay import CsvReplaySource
from haltless.agent.sources.machines import MachineDirectory
from haltless.agent.sources.mqtt import MqttSource
from haltless.agent.sources.simulated import SimulatorSource
from haltless.agent.stats import AgentStats
from haltless.agent.uplink import Uplink

log = logging.getLogger("haltless.agent")


@dataclass(frozen=True, slots=True)
class AgentSummary:
    """What a run did; printed as JSON by `--once`."""

    captured: int
    sent: int
    duplicates: int
    rejected: int
    dropped: int
    skipped: int
    buffered: int

    @property
    def complete(self) -> bool:
        """Everything captured reached the server and was stored (or was already there)."""
        return self.buffered == 0 and self.rejected == 0 and self.dropped == 0


def build_sources(config: AgentConfig, stats: AgentStats, *, once: bool) -> list[Source]:
    """One source object per `[[sources]]` entry."""
    machines = MachineDirectory(config.machines)
    sources: list[Source] = []
    for index, entry in enumerate(config.sources):
        if isinstance(entry, MqttSourceConfig):
            sources.append(MqttSource(entry, machines, stats))
        elif isinstance(entry, CsvSourceConfig):
            sources.append(CsvReplaySource(entry, machines, stats))
        elif isinstance(entry, SimulatorSourceConfig):
            sources.append(SimulatorSource(entry, machines, once=once))
        elif isinstance(entry, OpcUaSourceConfig):
            # Imported here: asyncua takes a third of a second to load, which agents without OPC UA need not pay.
            from haltless.agent.sources.opcua import OpcUaSource

            sources.append(OpcUaSource(entry, machines, stats, key=f"sources[{index}]"))
        elif isinstance(entry, ModbusSourceConfig):
            from haltless.agent.sources.modbus import ModbusSource

            sources.append(ModbusSource(entry, machines, stats))
    return sources


class Agent:
    """One running agent; `run_forever` and `run_once` own the buffer file while they run."""

    def __init__(self, config: AgentConfig, *, once: bool = False) -> None:
        self.config = config
        self.stats = AgentStats()
        self.sources = build_sources(config, self.stats, once=once)
        self.buffer: ReadingBuffer | None = None

    async def run_forever(self) -> None:
        """Capture and forward until cancelled or until a fatal error (bad key, broken buffer)."""
        async with self._running() as (buffer, uplink):
            emit = self._emitter(buffer, uplink)
            tasks = [asyncio.create_task(source.run(emit), name=source.name) for source in self.sources]
            tasks.append(asyncio.create_task(uplink.run(), name="uplink"))
            tasks.append(asyncio.create_task(self._report(buffer), name="status"))
            try:
                await _until_failure(tasks)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    async def run_once(self) -> AgentSummary:
        """One pass of the finite sources, then send everything buffered (with a bounded number of retries)."""
        async with self._running() as (buffer, uplink):
            for source in self.sources:
                if not source.finite:
                    log.info("%s: not run with --once (it never ends by itself)", source.name)
            await asyncio.gather(*(s.run(self._emitter(buffer, uplink)) for s in self.sources if s.finite))
            await uplink.drain(max_attempts=self.config.uplink.once_attempts)
            log.info("%s", self.stats.status_line(len(buffer), buffer.dropped))
            return self._summary(buffer)

    def _summary(self, buffer: ReadingBuffer) -> AgentSummary:
        stats = self.stats
        return AgentSummary(
            stats.captured, stats.sent, stats.duplicates, stats.rejected, buffer.dropped, stats.skipped, len(buffer)
        )

    @contextlib.asynccontextmanager
    async def _running(self) -> AsyncIterator[tuple[ReadingBuffer, Uplink]]:
        config = self.config
        buffer = await ReadingBuffer.open(config.buffer.path, config.buffer.max_rows, config.buffer.overflow)
        self.buffer = buffer
        log.info("buffer %s holds %d readings", config.buffer.path, len(buffer))
        headers = {"Authorization": f"Bearer {config.api_key}", "User-Agent": f"haltless-agent/{__version__}"}
        try:
            async with httpx.AsyncClient(
                base_url=config.server_url, headers=headers, timeout=config.uplink.timeout
            ) as http:
                yield buffer, Uplink(config.uplink, http, buffer, self.stats)
        finally:
            await buffer.close()

    def _emitter(self, buffer: ReadingBuffer, uplink: Uplink) -> Emit:
        async def emit(readings: Sequence[CapturedReading]) -> None:
            await buffer.append(readings)
            self.stats.captured += len(readings)
            uplink.notify_appended()

        return emit

    async def _report(self, buffer: ReadingBuffer) -> None:
        while True:
            await asyncio.sleep(self.config.status_interval)
            log.info("%s", self.stats.status_line(len(buffer), buffer.dropped))


async def _until_failure(tasks: list[asyncio.Task[None]]) -> None:
    """Wait while tasks run; a finished finite source is fine, any exception ends the agent."""
    pending = set(tasks)
    while pending:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()


def summary_json(summary: AgentSummary) -> dict[str, int | bool]:
    """The `--once` result as printed on stdout."""
    return {**asdict(summary), "complete": summary.complete}

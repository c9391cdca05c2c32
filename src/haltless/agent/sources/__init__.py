"""Sources turn the outside world (MQTT, CSV files, OPC UA, Modbus, simulated machines) into captured readings."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from haltless.agent.captured import CapturedReading

# Stores readings durably; when it returns, the source may acknowledge them upstream.
Emit = Callable[[Sequence[CapturedReading]], Awaitable[None]]


class SourceError(Exception):
    """A source cannot run at all (missing file, bad header); the message says which source and why."""


class SourceConfigError(SourceError):
    """The device disagrees with the config file (an OPC UA node it does not have); the message names the key."""


class Source(Protocol):
    """Anything that captures readings and hands them to `emit`."""

    @property
    def name(self) -> str:
        """Shown in logs and the status line."""

    @property
    def finite(self) -> bool:
        """True when `run` returns by itself after one pass (a CSV file); `--once` runs only these."""

    async def run(self, emit: Emit) -> None:
        """Capture readings until done (finite sources) or cancelled."""

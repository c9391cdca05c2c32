"""In-process event bus: publish hands the events straight to the subscribed sinks."""

from __future__ import annotations

from collections.abc import Sequence

from haltless.bus import EventSink


class MemoryBus:
    """The default bus for one server process."""

    def __init__(self) -> None:
        self._sinks: list[EventSink] = []

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        self._sinks.clear()

    async def publish(self, tenant_id: str, events: Sequence[str]) -> None:
        for sink in self._sinks:
            sink(tenant_id, events)

    def subscribe(self, sink: EventSink) -> None:
        self._sinks.append(sink)

"""The event bus: carries encoded events from the process that made them to every hub that serves sockets."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

# Receives (tenant_id, encoded events in order). Called on the event loop; must not block or await.
EventSink = Callable[[str, Sequence[str]], None]


class EventBus(Protocol):
    """Publish encoded events for a tenant; every subscribed sink (in every process) receives them in order."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def publish(self, tenant_id: str, events: Sequence[str]) -> None: ...

    def subscribe(self, sink: EventSink) -> None: ...


def create_bus(url: str) -> EventBus:
    """The bus named by `HALTLESS_BUS_URL`."""
    if url == "memory://" or url.startswith("memory:"):
        from haltless.bus.memory import MemoryBus

        return MemoryBus()
    raise ValueError(f"unsupported HALTLESS_BUS_URL {url!r}: use memory://")

"""The event bus: carries encoded events from the process that made them to every hub that serves sockets.

Every event that passes through a bus gets an `event_id` that is ordered per tenant: `<epoch>-<n>`, where the
epoch names the tenant's current stream (it changes when the stream is lost: a restart of the in-process bus,
or Redis losing its data) and `n` counts that tenant's events alone, so no tenant can read another's traffic
from its ids. The bus keeps a bounded per-tenant history so a reconnecting dashboard can resume where it
left off; an id of another epoch is never resumed from.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Protocol

log = logging.getLogger("haltless.bus")

# Receives (tenant_id, encoded events in order, each carrying its event_id). Called on the event loop;
# must not block or await.
EventSink = Callable[[str, Sequence[str]], None]
# Called when this process's sockets may have missed events: (tenant_id, reason) when only that tenant's
# events were affected (a publish failed), (None, reason) when every tenant's were (the subscription broke).
GapListener = Callable[[str | None, str], None]

DEFAULT_HISTORY = 10_000

# The longest a publish may wait on the bus. Publishing happens inside the tenant's lock, after the readings
# are committed: a hung bus must cost a batch at most this much, never the socket timeout, and a batch the
# bus has not taken by then is given up on (its sockets are told to resync) rather than delivered late.
PUBLISH_TIMEOUT = 0.25


class EventBus(Protocol):
    """Publish encoded events for a tenant; every subscribed sink (in every process) receives them in order."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def publish(self, tenant_id: str, events: Sequence[str]) -> None:
        """Stamp events with ids and deliver them, waiting at most PUBLISH_TIMEOUT; never raises for a bus
        outage (the readings are already stored): the tenant's sockets are told to resync instead."""
        ...

    def subscribe(self, sink: EventSink) -> None: ...

    def on_gap(self, listener: GapListener) -> None: ...

    async def history(self, tenant_id: str, after: str) -> list[str] | None:
        """Events of the tenant after `after` (exclusive), oldest first; None when that point is no longer
        retained, is of another epoch, or is unknown, meaning the caller must reload its state."""
        ...


class BusKind(StrEnum):
    """Which bus a `HALTLESS_BUS_URL` names."""

    # In this process only (`memory://`).
    MEMORY = "memory"
    # Redis, shared by every process using the same URL and prefix (`redis://`, `rediss://`, `unix://`).
    REDIS = "redis"


def bus_kind(url: str) -> BusKind | None:
    """The kind of bus `url` names; None when it names none we have. The one place a bus URL is read."""
    if url.startswith("memory:"):
        return BusKind.MEMORY
    if url.startswith(("redis://", "rediss://", "unix://")):
        return BusKind.REDIS
    return None


def deliver(sinks: Sequence[EventSink], tenant_id: str, events: Sequence[str]) -> None:
    """Hand a batch to every sink; one sink's failure is logged and does not keep the batch from the others
    (nor, on the Redis bus, end the subscription that every socket of the process depends on)."""
    for sink in sinks:
        try:
            sink(tenant_id, events)
        except Exception:
            log.exception("an event sink failed on %d event(s) of tenant %s", len(events), tenant_id)


def create_bus(url: str, *, prefix: str = "haltless", history_size: int = DEFAULT_HISTORY) -> EventBus:
    """The bus named by `HALTLESS_BUS_URL`."""
    kind = bus_kind(url)
    if kind is BusKind.MEMORY:
        from haltless.bus.memory import MemoryBus

        return MemoryBus(history_size=history_size)
    if kind is BusKind.REDIS:
        from haltless.bus.redis import RedisBus

        return RedisBus(url, prefix=prefix, history_size=history_size)
    raise ValueError(f"unsupported HALTLESS_BUS_URL {url!r}: use memory:// or redis://host:port/db")

"""In-process event bus: ids numbered per tenant within this process's epoch, a bounded history per tenant."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from itertools import repeat

from haltless.bus import EventSink, GapListener, deliver
from haltless.core.event_ids import EventKey, parse_event_id, with_sequential_ids


class MemoryBus:
    """The default bus for one server process. Ids are `<boot ms>-<n>`, `n` counting the tenant's own events:
    an id from before a restart is of another epoch, so resuming with it asks the client to resync."""

    def __init__(self, history_size: int) -> None:
        self._sinks: list[EventSink] = []
        self._history_size = history_size
        self._boot = time.time_ns() // 1_000_000
        # Per tenant: a shared counter would let a tenant read other tenants' traffic from the gaps in its ids.
        self._sequences: dict[str, int] = {}
        self._history: dict[str, deque[tuple[EventKey, str]]] = {}
        self._evicted_through: dict[str, EventKey] = {}

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        self._sinks.clear()

    async def publish(self, tenant_id: str, events: Sequence[str]) -> None:
        boot, first = self._boot, self._sequences.get(tenant_id, 0) + 1
        stamped = with_sequential_ids(events, boot, first)
        last = self._sequences[tenant_id] = first + len(stamped) - 1
        history = self._history.get(tenant_id)
        if history is None:
            history = self._history[tenant_id] = deque(maxlen=self._history_size)
        # Hot path (every ingest batch, bench M4): the deque drops what overflows by itself and the keys are made
        # in C (zip, repeat); a Python loop building each key and popping each evicted entry cost ~0.15 ms a
        # 500-event batch (docs/benchmarks.md "Hot-path choices"). Only the newest key it drops is worked out here.
        overflow = len(history) + len(stamped) - self._history_size
        if overflow > 0:
            held = len(history)
            self._evicted_through[tenant_id] = (
                history[overflow - 1][0] if overflow <= held else (boot, first + overflow - held - 1)
            )
        history.extend(zip(zip(repeat(boot), range(first, last + 1), strict=False), stamped, strict=True))
        deliver(self._sinks, tenant_id, stamped)

    def subscribe(self, sink: EventSink) -> None:
        self._sinks.append(sink)

    def on_gap(self, listener: GapListener) -> None:
        return None  # nothing can be lost between publisher and subscriber in one process

    async def history(self, tenant_id: str, after: str) -> list[str] | None:
        key = parse_event_id(after)
        if key is None or key[0] != self._boot or key[1] > self._sequences.get(tenant_id, 0):
            return None
        evicted = self._evicted_through.get(tenant_id)
        if evicted is not None and key < evicted:
            return None
        return [event for event_key, event in self._history.get(tenant_id, ()) if event_key > key]

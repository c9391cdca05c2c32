"""In-process event bus: ids numbered per tenant within this process's epoch, a bounded history per tenant."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from itertools import islice

from haltless.bus import EventSink, GapListener, deliver
from haltless.core.event_ids import parse_event_id, with_sequential_ids


class MemoryBus:
    """The default bus for one server process. Ids are `<boot ms>-<n>`, `n` counting the tenant's own events:
    an id from before a restart is of another epoch, so resuming with it asks the client to resync."""

    def __init__(self, history_size: int) -> None:
        self._sinks: list[EventSink] = []
        self._history_size = history_size
        self._boot = time.time_ns() // 1_000_000
        # Per tenant: a shared counter would let a tenant read other tenants' traffic from the gaps in its ids.
        self._sequences: dict[str, int] = {}
        # Per tenant, its newest events in order. Their numbers need not be kept: they run without a gap up to the
        # tenant's sequence. Hot path (every ingest batch, bench M4): a deque of strings only is nothing the
        # garbage collector tracks. Keeping ((boot, n), event) tuples filled its young generation with 1,000
        # tuples a batch, and each collection a batch set off walked the last ten batches' (~1 ms each).
        self._history: dict[str, deque[str]] = {}

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        self._sinks.clear()

    async def publish(self, tenant_id: str, events: Sequence[str]) -> None:
        first = self._sequences.get(tenant_id, 0) + 1
        stamped = with_sequential_ids(events, self._boot, first)
        self._sequences[tenant_id] = first + len(stamped) - 1
        history = self._history.get(tenant_id)
        if history is None:
            history = self._history[tenant_id] = deque(maxlen=self._history_size)
        # Hot path: the deque drops what overflows by itself (docs/benchmarks.md "Hot-path choices").
        history.extend(stamped)
        deliver(self._sinks, tenant_id, stamped)

    def subscribe(self, sink: EventSink) -> None:
        self._sinks.append(sink)

    def on_gap(self, listener: GapListener) -> None:
        return None  # nothing can be lost between publisher and subscriber in one process

    async def history(self, tenant_id: str, after: str) -> list[str] | None:
        key = parse_event_id(after)
        newest = self._sequences.get(tenant_id, 0)
        if key is None or key[0] != self._boot or key[1] > newest:
            return None
        held = self._history.get(tenant_id, ())
        # The events held are numbered newest - len(held) + 1 .. newest; those before were dropped, and only the
        # newest dropped one may still be resumed from (nothing after it is lost).
        skip = key[1] - (newest - len(held))
        if skip < 0:
            return None
        return list(islice(held, skip, None))

"""Redis event bus: one stream per tenant (ids and bounded history) plus one pub/sub channel for fan-out.

A Lua script appends a batch to the tenant's stream and publishes it with its stream ids in one atomic
step, so every process sees a tenant's events in stream order. When Redis goes away, publishing is
skipped (the readings are already stored), the subscriber reconnects with backoff, and local sockets are
told `resync_required` so they reload what they may have missed.

Ids are `<epoch>-<n>`: the epoch is the millisecond at which the tenant's stream was created (kept in
`<prefix>:stream-epoch:<tenant>`), `n` counts the tenant's events. When Redis loses the stream (a restart
without persistence, a flush, an eviction), the next publish starts a new epoch, so a dashboard resuming
from an id issued before is told to resync instead of silently missing what was lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Sequence
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from haltless.bus import EventSink, GapListener
from haltless.core.event_ids import parse_event_id, with_event_id

log = logging.getLogger("haltless.bus")

# KEYS[1] the tenant's stream, KEYS[2] its epoch, KEYS[3] the channel; ARGV[1] max history, ARGV[2] tenant,
# ARGV[3..] events.
_PUBLISH = """
local epoch = redis.call('GET', KEYS[2])
if not epoch or redis.call('EXISTS', KEYS[1]) == 0 then
  local t = redis.call('TIME')
  local fresh = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local old = tonumber(epoch)
  if old and old >= fresh then
    fresh = old + 1
  end
  epoch = string.format('%d', fresh)
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[2], epoch)
end
local ids = {}
local events = {}
for i = 3, #ARGV do
  ids[#ids + 1] = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], epoch .. '-*', 'e', ARGV[i])
  events[#events + 1] = ARGV[i]
end
redis.call('PUBLISH', KEYS[3], cjson.encode({t = ARGV[2], i = ids, e = events}))
return #ids
"""

_RECONNECT_MAX = 5.0
# Our loops retry and report the gap themselves; redis-py's own retries would hide a reconnect (and the events
# missed meanwhile) from the subscriber, and could run a publish twice.
_NO_RETRY = Retry(NoBackoff(), 0)


class RedisBus:
    """The bus for several server processes on one or more hosts."""

    def __init__(self, url: str, *, prefix: str, history_size: int) -> None:
        # Short timeouts: a dead Redis must not hold up an ingest request for long.
        self._redis: Redis = Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0, retry=_NO_RETRY)
        self._listen: Redis = Redis.from_url(url, socket_connect_timeout=2.0, health_check_interval=5, retry=_NO_RETRY)
        self._prefix = prefix
        self._channel = f"{prefix}:events"
        self._history_size = history_size
        self._sinks: list[EventSink] = []
        self._gap_listeners: list[GapListener] = []
        self._script: Any = self._redis.register_script(_PUBLISH)
        self._subscriber: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self.connected = False

    def _stream(self, tenant_id: str) -> str:
        return f"{self._prefix}:stream:{tenant_id}"

    def _epoch(self, tenant_id: str) -> str:
        return f"{self._prefix}:stream-epoch:{tenant_id}"

    async def start(self) -> None:
        self._subscriber = asyncio.create_task(self._run_subscriber())
        # Wait briefly for the first subscription so events published right after start-up are seen;
        # if Redis is down the server still starts (REST and ingestion work without the bus).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(3.0):
                await self._subscribed.wait()

    async def stop(self) -> None:
        if self._subscriber is not None:
            self._subscriber.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._subscriber
        self._sinks.clear()
        await self._redis.aclose()
        await self._listen.aclose()

    def subscribe(self, sink: EventSink) -> None:
        self._sinks.append(sink)

    def on_gap(self, listener: GapListener) -> None:
        self._gap_listeners.append(listener)

    async def publish(self, tenant_id: str, events: Sequence[str]) -> None:
        if not events:
            return
        try:
            await self._script(
                keys=[self._stream(tenant_id), self._epoch(tenant_id), self._channel],
                args=[self._history_size, tenant_id, *events],
            )
        except (RedisError, OSError) as exc:
            # The readings are stored; only the live stream misses them. The tenant's sockets hear about it.
            log.warning("event bus unavailable, %d event(s) not streamed: %s", len(events), exc)
            self._gap(tenant_id, "event bus unavailable")

    def _gap(self, tenant_id: str | None, reason: str) -> None:
        for listener in self._gap_listeners:
            listener(tenant_id, reason)

    async def _run_subscriber(self) -> None:
        failures = 0
        while True:
            pubsub = self._listen.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._channel)
                if failures:
                    log.info("event bus reconnected")
                    # Idle publishing connections are as dead as the subscription was: drop them, rather
                    # than lose the next batch on one of them.
                    await self._redis.connection_pool.disconnect(inuse_connections=False)
                    self._gap(None, "event bus reconnected")
                failures = 0
                self.connected = True
                self._subscribed.set()
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is not None and message.get("type") == "message":
                        self._deliver(message["data"])
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                if self.connected or failures == 0:
                    log.warning("event bus connection lost: %s", exc)
                    self._gap(None, "event bus connection lost")
                self.connected = False
                failures += 1
                # Capped exponential backoff with jitter: never a busy loop while Redis is down.
                await asyncio.sleep(min(_RECONNECT_MAX, 0.1 * 2**failures) * random.uniform(0.5, 1.0))
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _deliver(self, data: bytes) -> None:
        batch = orjson.loads(data)
        tenant_id: str = batch["t"]
        ids: list[str] = batch["i"]
        events: list[str] = batch["e"]
        stamped = [with_event_id(event, event_id) for event, event_id in zip(events, ids, strict=True)]
        for sink in self._sinks:
            sink(tenant_id, stamped)

    async def history(self, tenant_id: str, after: str) -> list[str] | None:
        key = parse_event_id(after)
        if key is None:
            return None
        stream = self._stream(tenant_id)
        try:
            # One transaction, so the epoch, the stream's bounds and its entries are of the same moment.
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.get(self._epoch(tenant_id))
                pipe.xinfo_stream(stream)
                pipe.xrange(stream, min=f"({after}", max="+")
                epoch, info, entries = await pipe.execute(raise_on_error=False)
        except (RedisError, OSError):
            return None
        if epoch is None or any(isinstance(part, Exception) for part in (epoch, info, entries)):
            return None  # no stream: lost with Redis's data (or never made), so whatever came before is gone
        if _text(epoch) != str(key[0]):
            return None  # an id of a stream that Redis has lost since
        last = parse_event_id(_text(info.get("last-generated-id", "")))
        trimmed = parse_event_id(_text(info.get("max-deleted-entry-id", "0-0")))
        if last is None or key > last or (trimmed is not None and key < trimmed):
            return None  # not issued yet (not ours), or older than what is retained
        return [with_event_id(_text((fields or {})[b"e"]), _text(entry_id)) for entry_id, fields in entries or []]


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)

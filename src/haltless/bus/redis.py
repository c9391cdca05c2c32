"""Redis event bus: one stream per tenant (ids and bounded history) plus one pub/sub channel for fan-out.

A Lua script appends a batch to the tenant's stream and publishes it with its stream ids in one atomic
step, so every process sees a tenant's events in stream order.

Ids are `<epoch>-<n>`: the epoch is the millisecond at which the tenant's stream was created (kept in
`<prefix>:stream-epoch:<tenant>`), `n` counts the tenant's events. When Redis loses the stream (a restart
without persistence, a flush, an eviction), the next publish starts a new epoch, so a dashboard resuming
from an id issued before is told to resync instead of silently missing what was lost.

A hung or unreachable Redis costs a publish at most PUBLISH_TIMEOUT. A batch given up on must not land
later, after newer ones: the script checks a deadline on Redis's own clock (core.remote_clock) and refuses
to run once the publisher has stopped waiting. The tenant's local sockets are told `resync_required` at
once, and the tenant owes its stream a gap marker: a `resync_required` entry appended before its next events,
so sockets in every process, and every client that later resumes from before the gap, hear about it too.
After a timeout or a connection error the bus counts as broken: publishes skip Redis without waiting (the
tenants owe markers) while a background task retries with capped backoff, writes the owed markers, and
closes the circuit again. A lost subscription tells every local socket to resync, when lost and when back;
"back" is said only once publishing works again (or has had a bounded wait to), and it clears every
tenant's "already told" mark, so an event skipped after it tells its sockets again instead of vanishing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError

from haltless.bus import PUBLISH_TIMEOUT, EventSink, GapListener, deliver
from haltless.core.backoff import Backoff
from haltless.core.event_ids import parse_event_id, with_event_id
from haltless.core.remote_clock import ClockEstimate, measured, remote_deadline, tighter
from haltless.core.wire import resync_required

log = logging.getLogger("haltless.bus")

# KEYS[1] the tenant's stream, KEYS[2] its epoch, KEYS[3] the channel;
# ARGV[1] max history, ARGV[2] tenant, ARGV[3] deadline (Redis clock, µs), ARGV[4..] events.
# Returns {1 published | 0 too late, seconds, microseconds} (Redis's clock when it ran).
_PUBLISH = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
if now > tonumber(ARGV[3]) then
  return {0, t[1], t[2]}
end
local epoch = redis.call('GET', KEYS[2])
if not epoch or redis.call('EXISTS', KEYS[1]) == 0 then
  local fresh = math.floor(now / 1000)
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
for i = 4, #ARGV do
  ids[#ids + 1] = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], epoch .. '-*', 'e', ARGV[i])
  events[#events + 1] = ARGV[i]
end
redis.call('PUBLISH', KEYS[3], cjson.encode({t = ARGV[2], i = ids, e = events}))
return {1, t[1], t[2]}
"""

_PUBLISH_US = int(PUBLISH_TIMEOUT * 1_000_000)
# How long a background retry waits for Redis to answer `TIME` before counting the attempt as failed.
_PROBE_TIMEOUT = 1.0
_RECONNECT_MAX = 5.0
# How long a reconnected subscriber waits for publishing to work again before it says "reconnected".
_RESUME_WAIT = 3.0
# Our loops retry and report the gap themselves; redis-py's own retries would hide a reconnect (and the events
# missed meanwhile) from the subscriber, and could run a publish twice.
_NO_RETRY = Retry(NoBackoff(), 0)

_UNAVAILABLE = "event bus unavailable; events not streamed"
_GAP_MARKER = resync_required("events were not streamed while the event bus was unavailable; reload state")


class _TooLate(Exception):
    """Redis ran the publish after its deadline (or the clock estimate is too loose to set one): refused."""


def _now_us() -> int:
    return time.monotonic_ns() // 1000


# Capped exponential backoff with jitter: never a busy loop while Redis is down. Retry n waits 0.2 * 2 ** (n - 1)
# seconds up to _RECONNECT_MAX, half of it at random.
RECONNECT_BACKOFF = Backoff(initial=0.2, maximum=_RECONNECT_MAX, jitter=0.5)


class RedisBus:
    """The bus for several server processes on one or more hosts."""

    def __init__(self, url: str, *, prefix: str, history_size: int) -> None:
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
        # The circuit: set while publishing may use Redis; cleared after a timeout or connection error until
        # the background retry (`_recover`) has reached Redis and written the owed gap markers.
        self._usable = asyncio.Event()
        self._recovery: asyncio.Task[None] | None = None
        # Tenants whose events were not streamed: their next publish starts with a gap marker.
        self._owed: set[str] = set()
        # Tenants whose local sockets have been told about the current gap (told once, not per skipped batch).
        # Separate from `_owed`: a reconnect tells everyone and clears this, while the stream markers stay owed.
        self._told: set[str] = set()
        self._clock: ClockEstimate | None = None
        self._stopped = False

    def _stream(self, tenant_id: str) -> str:
        return f"{self._prefix}:stream:{tenant_id}"

    def _epoch(self, tenant_id: str) -> str:
        return f"{self._prefix}:stream-epoch:{tenant_id}"

    async def start(self) -> None:
        self._subscriber = asyncio.create_task(self._run_subscriber())
        self._recovery = asyncio.create_task(self._recover(immediately=True, announce=False))
        # Wait briefly for the first subscription and the first clock reading, so events published right after
        # start-up are seen; if Redis is down the server still starts (REST and ingestion work without the bus).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(3.0):
                await self._subscribed.wait()
                await self._usable.wait()

    async def stop(self) -> None:
        self._stopped = True
        for task in (self._subscriber, self._recovery):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._sinks.clear()
        await self._redis.aclose()
        await self._listen.aclose()

    def subscribe(self, sink: EventSink) -> None:
        self._sinks.append(sink)

    def on_gap(self, listener: GapListener) -> None:
        self._gap_listeners.append(listener)

    def _gap(self, tenant_id: str | None, reason: str) -> None:
        for listener in self._gap_listeners:
            listener(tenant_id, reason)

    # ---- publishing --------------------------------------------------------------------------------------

    async def publish(self, tenant_id: str, events: Sequence[str]) -> None:
        if not events:
            return
        if not self._usable.is_set():
            self._owe(tenant_id)
            return
        owed = tenant_id in self._owed
        try:
            await self._send(tenant_id, [_GAP_MARKER, *events] if owed else events)
        except ResponseError as exc:
            # Redis refused this tenant's batch (a script or key error): the tenant's concern, not the circuit's.
            log.warning("event bus refused %d event(s) of tenant %s: %s", len(events), tenant_id, exc)
            self._owe(tenant_id)
        except (RedisError, OSError, TimeoutError, _TooLate) as exc:
            self._owe(tenant_id)
            self._trip(exc)
        else:
            if owed:
                self._paid(tenant_id)

    async def _send(self, tenant_id: str, events: Sequence[str]) -> None:
        """Append and publish within PUBLISH_TIMEOUT, or not at all: Redis refuses to run it any later."""
        sent = _now_us()
        deadline = None if self._clock is None else remote_deadline(self._clock, sent, _PUBLISH_US)
        if deadline is None:
            raise _TooLate("no precise enough reading of Redis's clock")
        async with asyncio.timeout(PUBLISH_TIMEOUT):
            published, seconds, micros = await self._script(
                keys=[self._stream(tenant_id), self._epoch(tenant_id), self._channel],
                args=[self._history_size, tenant_id, deadline, *events],
            )
        self._clocked(sent, int(seconds) * 1_000_000 + int(micros))
        if not published:
            raise _TooLate("Redis ran the publish after its deadline")

    def _clocked(self, sent: int, remote: int) -> None:
        self._clock = tighter(self._clock, measured(sent, _now_us(), remote))

    def _owe(self, tenant_id: str) -> None:
        """The tenant's events were not streamed: tell its local sockets now (once per gap), its stream later."""
        self._owed.add(tenant_id)
        if tenant_id not in self._told:
            self._told.add(tenant_id)
            self._gap(tenant_id, _UNAVAILABLE)

    def _paid(self, tenant_id: str) -> None:
        """The tenant's gap marker is in its stream (every socket hears it from there): the gap is closed."""
        self._owed.discard(tenant_id)
        self._told.discard(tenant_id)

    def _trip(self, exc: BaseException) -> None:
        """Stop waiting on Redis until a background retry reaches it again."""
        if self._usable.is_set():
            self._usable.clear()
            why = str(exc) or type(exc).__name__
            log.warning("event bus unavailable (%s); publishing without it until it answers again", why)
        if not self._stopped and (self._recovery is None or self._recovery.done()):
            self._recovery = asyncio.create_task(self._recover())

    async def _recover(self, *, immediately: bool = False, announce: bool = True) -> None:
        failures = 0 if immediately else 1
        while True:
            if failures:
                await asyncio.sleep(RECONNECT_BACKOFF.delay(failures))
            try:
                await self._read_clock()
                await self._write_owed_markers()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, TimeoutError, _TooLate):
                failures += 1
                continue
            if announce:
                log.info("event bus answers again; publishing resumed")
            self._usable.set()
            return

    async def _read_clock(self) -> None:
        sent = _now_us()
        async with asyncio.timeout(_PROBE_TIMEOUT):
            seconds, micros = await self._redis.time()
        self._clocked(sent, seconds * 1_000_000 + micros)

    async def _write_owed_markers(self) -> None:
        """Append a gap marker to the stream of every tenant whose events were not streamed."""
        tried: set[str] = set()
        while pending := self._owed - tried:
            tenant_id = pending.pop()
            tried.add(tenant_id)
            try:
                await self._send(tenant_id, [_GAP_MARKER])
            except ResponseError as exc:
                log.warning("event bus refused the gap marker of tenant %s: %s", tenant_id, exc)
                continue  # still owed: its next publish carries the marker
            self._paid(tenant_id)

    async def _resume_publishing(self) -> None:
        """Retry publishing now rather than at the end of its backoff, and wait (bounded) until it works.

        Redis has just answered the subscriber, so it is most likely back. Saying "reconnected" while publishing
        still skips Redis would make sockets reload state and then miss the events after it.
        """
        if self._usable.is_set() or self._stopped:
            return
        if self._recovery is not None:
            self._recovery.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._recovery
        self._recovery = asyncio.create_task(self._recover(immediately=True))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_RESUME_WAIT):
                await self._usable.wait()

    # ---- subscribing ---------------------------------------------------------------------------------------

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
                    await self._resume_publishing()
                    self._told.clear()
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
                await asyncio.sleep(RECONNECT_BACKOFF.delay(failures))
            finally:
                # redis-py annotated aclose() only in 8.2: through a typed name, mypy passes on every release
                # pyproject.toml admits (a `type: ignore` is "unused" on 8.2 and needed before it).
                aclose: Callable[[], Awaitable[None]] = pubsub.aclose
                with contextlib.suppress(Exception):
                    await aclose()

    def _deliver(self, data: bytes) -> None:
        try:
            batch = orjson.loads(data)
            tenant_id: str = batch["t"]
            ids: list[str] = batch["i"]
            events: list[str] = batch["e"]
            stamped = [with_event_id(event, event_id) for event, event_id in zip(events, ids, strict=True)]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            # Anything may publish on the channel; a foreign message must not end the subscription.
            log.warning("event bus: skipped a message on %s that is not one of ours (%s)", self._channel, exc)
            return
        deliver(self._sinks, tenant_id, stamped)

    # ---- resuming ------------------------------------------------------------------------------------------

    async def history(self, tenant_id: str, after: str) -> list[str] | None:
        key = parse_event_id(after)
        if key is None or not self._usable.is_set():
            return None  # not one of ours, or Redis is known broken: do not make the socket wait on it
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

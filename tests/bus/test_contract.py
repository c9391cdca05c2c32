"""The EventBus contract, held by the in-process bus and the Redis bus alike: per-tenant ids, resume, restarts."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence

import orjson
import pytest

from haltless.bus import EventBus
from haltless.bus.memory import MemoryBus
from haltless.bus.redis import RedisBus
from haltless.core.event_ids import EventKey, event_key_of
from tests.bus.conftest import PrivateRedis, SharedRedis
from tests.conftest import EVENT_TIMEOUT, wait_until


class Received:
    """What a bus delivered to its sink, in order."""

    def __init__(self, bus: EventBus) -> None:
        self.batches: list[tuple[str, list[str]]] = []
        bus.subscribe(self._sink)

    def _sink(self, tenant_id: str, events: Sequence[str]) -> None:
        self.batches.append((tenant_id, list(events)))

    def events(self, tenant_id: str) -> list[str]:
        return [event for tenant, events in self.batches if tenant == tenant_id for event in events]

    async def wait_for(self, tenant_id: str, count: int) -> list[str]:
        await wait_until(lambda: len(self.events(tenant_id)) >= count, f"{count} events of {tenant_id}")
        return self.events(tenant_id)


def _event(value: int) -> str:
    return orjson.dumps({"type": "sensor_update", "value": value}).decode()


def _key(event: str) -> EventKey:
    key = event_key_of(event)
    assert key is not None, event
    return key


def _id(event: str) -> str:
    epoch, sequence = _key(event)
    return f"{epoch}-{sequence}"


@pytest.fixture(params=["memory", "redis"])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[EventBus]:
    """A started bus of each kind (the Redis one on the shared Redis under a prefix of its own)."""
    made: EventBus
    if request.param == "memory":
        made = MemoryBus(history_size=100)
    else:
        shared: SharedRedis = request.getfixturevalue("shared_redis")
        made = RedisBus(shared.url, prefix=shared.prefix, history_size=100)
    await made.start()
    yield made
    await made.stop()


async def test_each_tenant_numbers_its_own_events(bus: EventBus) -> None:
    """A tenant's ids count its own events one by one: gaps would show it how busy other tenants are."""
    received = Received(bus)
    await bus.publish("tenant-a", [_event(1), _event(2)])
    await bus.publish("tenant-b", [_event(3), _event(4), _event(5)])
    await bus.publish("tenant-a", [_event(6)])
    for tenant_id, count in (("tenant-a", 3), ("tenant-b", 3)):
        keys = [_key(event) for event in await received.wait_for(tenant_id, count)]
        epoch, first = keys[0]
        assert keys == [(epoch, first + i) for i in range(count)], tenant_id


async def test_resume_returns_exactly_what_came_after(bus: EventBus) -> None:
    received = Received(bus)
    await bus.publish("tenant-a", [_event(1), _event(2)])
    await bus.publish("tenant-b", [_event(3)])
    await bus.publish("tenant-a", [_event(4)])
    first, *rest = await received.wait_for("tenant-a", 3)
    assert await bus.history("tenant-a", _id(first)) == rest
    assert await bus.history("tenant-a", _id(rest[-1])) == []


async def test_history_refuses_points_it_cannot_vouch_for(bus: EventBus) -> None:
    """Another epoch, an id not issued yet, or no id at all: the caller must reload instead."""
    received = Received(bus)
    await bus.publish("tenant-a", [_event(1), _event(2)])
    last = (await received.wait_for("tenant-a", 2))[-1]
    epoch, sequence = _key(last)
    for point in (f"{epoch + 1}-{sequence}", f"{epoch - 1}-{sequence}", f"{epoch}-{sequence + 5}", "x-1", ""):
        assert await bus.history("tenant-a", point) is None, point


async def _next_millisecond() -> None:
    start = time.time_ns() // 1_000_000
    await wait_until(lambda: time.time_ns() // 1_000_000 > start, "the clock to move on")


async def test_memory_bus_ids_from_before_a_restart_ask_for_resync() -> None:
    before = MemoryBus(history_size=100)
    old = Received(before)
    await before.publish("tenant-a", [_event(1)])
    resume_point = _id(old.events("tenant-a")[0])
    await _next_millisecond()

    after = MemoryBus(history_size=100)  # the server restarted: a new process, a new epoch
    new = Received(after)
    assert await after.history("tenant-a", resume_point) is None
    await after.publish("tenant-a", [_event(2), _event(3), _event(4)])
    assert await after.history("tenant-a", resume_point) is None
    assert await after.history("tenant-a", _id(new.events("tenant-a")[0])) == new.events("tenant-a")[1:]


async def _published(bus: EventBus, received: Received, tenant_id: str, value: int) -> str:
    """Publish one event until it is delivered (after a Redis restart the first may be lost on the way; waiting
    bounds no outcome, a slow delivery only means one more publish); its id."""
    async with asyncio.timeout(EVENT_TIMEOUT):
        while True:
            count = len(received.events(tenant_id))
            await bus.publish(tenant_id, [_event(value)])

            def delivered(after: int = count) -> bool:
                return len(received.events(tenant_id)) > after

            with contextlib.suppress(AssertionError):
                await wait_until(delivered, "a delivery", timeout=1.0)
            for event in received.events(tenant_id)[count:]:
                if orjson.loads(event).get("value") == value:
                    return _id(event)


async def test_redis_bus_ids_from_before_redis_lost_its_data_ask_for_resync(private_redis: PrivateRedis) -> None:
    bus = RedisBus(private_redis.url, prefix="haltless", history_size=100)
    await bus.start()
    try:
        received = Received(bus)
        resume_point = await _published(bus, received, "tenant-a", 1)
        other_point = await _published(bus, received, "tenant-b", 2)

        private_redis.restart()  # no persistence: every stream and epoch is gone
        # Another tenant's events flow again, so the bus is usable: what follows is the epochs' doing.
        await _published(bus, received, "tenant-c", 3)
        assert await bus.history("tenant-a", resume_point) is None
        assert await bus.history("tenant-b", other_point) is None

        # A new stream for the tenant reuses none of the lost stream's ids.
        fresh = await _published(bus, received, "tenant-a", 4)
        assert await bus.history("tenant-a", resume_point) is None
        assert fresh.split("-")[0] != resume_point.split("-")[0]
        assert await bus.history("tenant-a", fresh) == []
    finally:
        await bus.stop()


async def test_a_failing_sink_keeps_the_batch_from_no_other_sink(bus: EventBus) -> None:
    def broken(tenant_id: str, events: Sequence[str]) -> None:
        raise RuntimeError("a sink with a bug")

    bus.subscribe(broken)
    received = Received(bus)
    await _published(bus, received, "tenant-a", 1)
    await _published(bus, received, "tenant-a", 2)  # the first failure ended nothing
    assert [orjson.loads(e)["value"] for e in received.events("tenant-a")][-1] == 2


async def test_redis_bus_skips_messages_on_its_channel_that_are_not_its_own(shared_redis: SharedRedis) -> None:
    bus = RedisBus(shared_redis.url, prefix=shared_redis.prefix, history_size=100)
    await bus.start()
    try:
        received = Received(bus)
        with shared_redis.client() as client:
            for junk in (b"not json", b"[]", b'{"t": "tenant-a"}', b'{"t": "tenant-a", "i": [1], "e": [2]}'):
                client.publish(f"{shared_redis.prefix}:events", junk)
        await _published(bus, received, "tenant-a", 7)
        assert [orjson.loads(e)["value"] for e in received.events("tenant-a")] == [7]
    finally:
        await bus.stop()


async def test_redis_bus_resumes_publishing_before_it_says_reconnected(private_redis: PrivateRedis) -> None:
    """After "event bus reconnected" a socket reloads its state; an event published after that must reach it,
    or the tenant's sockets must be told again. Never neither (the old bus skipped it silently while its
    publishing circuit waited out its backoff)."""
    bus = RedisBus(private_redis.url, prefix="haltless", history_size=100)
    gaps: list[tuple[str | None, str]] = []
    bus.on_gap(lambda tenant_id, reason: gaps.append((tenant_id, reason)))
    await bus.start()
    try:
        received = Received(bus)
        await _published(bus, received, "tenant-a", 1)
        private_redis.kill()
        await bus.publish("tenant-a", [_event(2)])  # skipped: Redis is gone
        await wait_until(lambda: ("tenant-a", "event bus unavailable; events not streamed") in gaps, "a tenant gap")
        private_redis.start()
        await wait_until(lambda: (None, "event bus reconnected") in gaps, "the reconnect", timeout=60)
        told_before = len(gaps)
        count = len(received.events("tenant-a"))
        await bus.publish("tenant-a", [_event(3)])

        def delivered_or_told() -> bool:
            values = [orjson.loads(e).get("value") for e in received.events("tenant-a")[count:]]
            return 3 in values or any(tenant == "tenant-a" for tenant, _ in gaps[told_before:])

        await wait_until(delivered_or_told, "the event after the reconnect, or a new resync for its tenant")
    finally:
        await bus.stop()


@pytest.mark.parametrize("batches", [[2, 2, 1], [1, 5], [4], [3, 3], [2, 0, 2, 2]])
async def test_the_memory_bus_keeps_the_newest_events_and_refuses_points_before_them(batches: list[int]) -> None:
    """Whatever the batch sizes, the in-process history holds the newest `history_size` events; a point among
    the evicted ones asks for a reload, the newest evicted one still resumes from the oldest event held."""
    bus = MemoryBus(history_size=3)
    received = Received(bus)
    value = 0
    for size in batches:
        await bus.publish("tenant-a", [_event(value + i) for i in range(size)])
        value += size
    everything = [event for _, batch in received.batches for event in batch]
    assert len(everything) == value
    held = everything[-3:]
    evicted = everything[:-3]
    assert await bus.history("tenant-a", _id(evicted[-1])) == held
    for event in evicted[:-1]:
        assert await bus.history("tenant-a", _id(event)) is None
    assert await bus.history("tenant-a", _id(held[0])) == held[1:]

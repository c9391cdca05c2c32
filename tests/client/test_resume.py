"""Resuming the dashboard stream: replay of missed events after a drop, resync after a restart, alert events typed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest
from websockets.asyncio.server import ServerConnection, serve

from haltless.client import (
    Alert,
    AlertAcknowledged,
    AlertResolved,
    AsyncHaltlessClient,
    Backoff,
    Connected,
    Event,
    MachineStatus,
    Reading,
    Reconnecting,
    ResyncRequired,
    SensorUpdate,
)
from tests.client.helpers import StreamRecorder
from tests.conftest import PASSWORD, RunningServer, Tenant, start_server

FAST = Backoff(initial=0.1, maximum=0.4, jitter=0)


@pytest.fixture
async def restarts() -> AsyncIterator[list[RunningServer]]:
    """Servers a test started again by hand; stopped at the end."""
    started: list[RunningServer] = []
    yield started
    for running in started:
        await asyncio.to_thread(running.stop)


def is_update(value: float) -> Callable[[Any], bool]:
    return lambda item: isinstance(item, SensorUpdate) and item.value == value


def id_key(event_id: str | None) -> tuple[int, int]:
    assert event_id is not None
    millis, _, sequence = event_id.partition("-")
    return int(millis), int(sequence)


async def test_dropped_connection_resumes_with_exactly_the_missed_events(server: RunningServer, tenant: Tenant) -> None:
    """The server stays up (heartbeat every 30 s); the client's 1.5 s watchdog drops the socket, readings are ingested
    while it waits 2 s to reconnect, and the resumed connection delivers each of them once, in order."""
    machine_id = await tenant.add_machine()
    async with AsyncHaltlessClient(server.base_url, email=tenant.admin_email, password=PASSWORD) as client:
        await client.create_alert_rule("Too hot", "temperature", ">", 3.5, severity="critical")
        stream = client.stream(
            status_events=True, heartbeat_interval=0.5, backoff=Backoff(initial=2.0, maximum=2.0, jitter=0)
        )
        recorder = StreamRecorder(stream)
        try:
            await recorder.next_of(Connected)
            await client.ingest([Reading(machine_id, "temperature", 1.0)])
            first = await recorder.next_matching(is_update(1.0))
            assert isinstance(first, SensorUpdate) and first.event_id is not None

            dropped = await recorder.next_of(Reconnecting)
            assert "no heartbeat" in dropped.reason
            await client.ingest([Reading(machine_id, "temperature", 2.0), Reading(machine_id, "temperature", 3.0)])
            await client.ingest([Reading(machine_id, "temperature", 4.0)])
            assert not stream.connected  # all of it was published while the stream was away

            await recorder.next_of(Connected)
            await recorder.next_of(MachineStatus)  # the last event 4.0 causes: healthy → critical
            # One more drop and resume with nothing missed in between must not repeat anything.
            await recorder.next_of(Reconnecting)
            await recorder.next_of(Connected)
            await client.ingest([Reading(machine_id, "temperature", 5.0)])
            await recorder.next_matching(is_update(5.0))
        finally:
            await recorder.close()

    events = [item for item in recorder.items if isinstance(item, Event)]
    assert [e.value for e in events if isinstance(e, SensorUpdate)] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert [e.type for e in events] == [
        "sensor_update",
        "machine_status",  # offline → healthy
        "sensor_update",
        "sensor_update",
        "sensor_update",
        "alert",
        "machine_status",
        "sensor_update",
    ]
    keys = [id_key(e.event_id) for e in events]
    assert keys == sorted(set(keys))  # every event once, in the server's order
    assert stream.last_event_id == events[-1].event_id
    assert not any(isinstance(item, (ResyncRequired, BaseException)) for item in recorder.items)


async def test_resume_after_a_restart_yields_resync_required(
    server_factory: Callable[..., RunningServer], tenant_factory: Callable[..., Any], restarts: list[RunningServer]
) -> None:
    """A single-process server forgets its event history on restart: the resumed reconnect gets ResyncRequired
    (even through a `types` filter), then live events."""
    running = server_factory(ws_heartbeat_interval=0.5)
    tenant: Tenant = await tenant_factory(running)
    machine_id = await tenant.add_machine()
    async with AsyncHaltlessClient(running.base_url, email=tenant.admin_email, password=PASSWORD) as client:
        stream = client.stream(types={"sensor_update"}, status_events=True, heartbeat_interval=0.5, backoff=FAST)
        recorder = StreamRecorder(stream)
        try:
            await recorder.next_of(Connected)
            await client.ingest([Reading(machine_id, "temperature", 1.0), Reading(machine_id, "temperature", 2.0)])
            await recorder.next_matching(is_update(2.0))
            resume_point = stream.last_event_id
            assert resume_point is not None

            await asyncio.to_thread(running.stop)
            await recorder.next_of(Reconnecting)
            again = await asyncio.to_thread(start_server, running.settings, running.port)
            restarts.append(again)
            await recorder.next_of(Connected)
            resync = await recorder.next_of(ResyncRequired)
            await client.ingest([Reading(machine_id, "temperature", 3.0)])
            await recorder.next_matching(is_update(3.0))
        finally:
            await recorder.close()

    assert resync.type == "resync_required" and resync.event_id is None
    assert "reload state" in resync.reason
    after_restart = recorder.items[recorder.items.index(resync) :]
    assert [type(i) for i in after_restart] == [ResyncRequired, SensorUpdate]
    assert [i.value for i in recorder.items if isinstance(i, SensorUpdate)] == [1.0, 2.0, 3.0]
    assert stream.last_event_id != resume_point


async def test_first_message_carries_resume_after_only_on_reconnect_and_only_with_resume_on() -> None:
    """A stand-in server records what each connection sends first, sends one event, then goes silent."""
    firsts: list[str] = []

    async def one_event_then_silence(ws: ServerConnection) -> None:
        firsts.append(str(await ws.recv()))
        await ws.send(orjson.dumps({"type": "heartbeat", "server_time": "2026-04-04T10:30:00Z"}).decode())
        number = len(firsts)
        await ws.send(orjson.dumps({"type": "future_thing", "n": number, "event_id": f"100-{number}"}).decode())
        await ws.wait_closed()

    async with serve(one_event_then_silence, "127.0.0.1", 0) as peer:
        url = f"ws://127.0.0.1:{peer.sockets[0].getsockname()[1]}/"
        async with AsyncHaltlessClient("http://127.0.0.1:1", token="a.b.c") as client:
            for resume in (True, False):
                firsts.clear()
                stream = client.stream(heartbeat_interval=0.1, backoff=FAST, ws_url=url, resume=resume)
                recorder = StreamRecorder(stream)
                try:
                    for _ in range(3):
                        await recorder.next_of(Event)
                finally:
                    await recorder.close()
                if resume:
                    assert [orjson.loads(f) if f.startswith("{") else f for f in firsts[:3]] == [
                        "a.b.c",
                        {"token": "a.b.c", "resume_after": "100-1"},
                        {"token": "a.b.c", "resume_after": "100-2"},
                    ]
                else:
                    assert firsts[:3] == ["a.b.c"] * 3
                unknown = [i for i in recorder.items if isinstance(i, Event)]
                assert [(e.type, e.event_id, e.raw["n"]) for e in unknown] == [
                    ("future_thing", "100-1", 1),
                    ("future_thing", "100-2", 2),
                    ("future_thing", "100-3", 3),
                ]


async def test_alert_lifecycle_arrives_as_typed_events(server: RunningServer, tenant: Tenant) -> None:
    machine_id = await tenant.add_machine()
    async with AsyncHaltlessClient(server.base_url, email=tenant.admin_email, password=PASSWORD) as client:
        me = await client.me()
        await client.create_alert_rule("Too hot", "temperature", ">", 85.0, severity="critical")
        recorder = StreamRecorder(
            client.stream(types={"alert", "alert_acknowledged", "alert_resolved"}, status_events=True)
        )
        try:
            # A stream without a resume point gets only what is published after it subscribed: wait for that first.
            await recorder.next_of(Connected)
            await client.ingest([Reading(machine_id, "temperature", 87.3)])
            opened: Alert = await recorder.next_of(Alert)
            await client.acknowledge_alert(opened.alert_id)
            acknowledged: AlertAcknowledged = await recorder.next_of(AlertAcknowledged)
            await client.resolve_alert(opened.alert_id)
            resolved: AlertResolved = await recorder.next_of(AlertResolved)
        finally:
            await recorder.close()
    assert (opened.machine_id, opened.severity, opened.metric_value) == (machine_id, "critical", 87.3)
    assert (acknowledged.alert_id, acknowledged.machine_id, acknowledged.acknowledged_by) == (
        opened.alert_id,
        machine_id,
        me.user_id,
    )
    assert acknowledged.acknowledged_at is not None
    assert (resolved.alert_id, resolved.severity, resolved.resolution) == (opened.alert_id, "critical", "manual")
    assert resolved.resolved_at is not None
    keys = [id_key(e.event_id) for e in (opened, acknowledged, resolved)]
    assert keys == sorted(set(keys))

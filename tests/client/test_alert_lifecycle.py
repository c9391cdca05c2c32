"""The alert lifecycle through the SDK against a real server: comments, shelving and the history as typed
results, and the new stream events as typed events."""

from __future__ import annotations

import orjson

from haltless.client import (
    Alert,
    AlertAcknowledged,
    AlertEscalated,
    AlertShelved,
    AlertUnshelved,
    AsyncHaltlessClient,
    Connected,
    Reading,
)
from haltless.client._events import parse_event
from haltless.core import wire
from tests.client.helpers import StreamRecorder
from tests.conftest import PASSWORD, RunningServer, Tenant


async def test_comments_shelving_and_history_through_the_sdk(server: RunningServer, tenant: Tenant) -> None:
    machine_id = await tenant.add_machine()
    async with AsyncHaltlessClient(server.base_url, email=tenant.admin_email, password=PASSWORD) as client:
        me = await client.me()
        await client.create_alert_rule("Too hot", "temperature", ">", 85.0, severity="critical")
        recorder = StreamRecorder(
            client.stream(types={"alert", "alert_acknowledged", "alert_shelved", "alert_unshelved"}, status_events=True)
        )
        try:
            # A stream opened without an event id starts at what comes after it connects: wait for that, or
            # the alert may be published before the socket is subscribed (it was, in CI on a loaded machine).
            await recorder.next_of(Connected)
            await client.ingest([Reading(machine_id, "temperature", 87.3)])
            opened: Alert = await recorder.next_of(Alert)
            acked = await client.acknowledge_alert(opened.alert_id, comment="on it")
            acknowledged: AlertAcknowledged = await recorder.next_of(AlertAcknowledged)
            shelved = await client.shelve_alert(opened.alert_id, 900, comment="parts on the way")
            shelf: AlertShelved = await recorder.next_of(AlertShelved)
            unshelved = await client.unshelve_alert(opened.alert_id)
            off: AlertUnshelved = await recorder.next_of(AlertUnshelved)
            history = await client.alert_history(opened.alert_id)
        finally:
            await recorder.close()
    assert (acked.acknowledge_comment, acknowledged.comment, acknowledged.acknowledged_by) == (
        "on it",
        "on it",
        me.user_id,
    )
    assert shelved.shelved_until is not None and shelf.shelved_until == shelved.shelved_until
    assert (shelf.shelved_by, shelf.comment) == (me.user_id, "parts on the way")
    assert unshelved.shelved_until is None and off.unshelved_by == me.user_id
    assert [(e.kind, e.actor, e.comment) for e in history] == [
        ("opened", "system", None),
        ("acknowledged", me.user_id, "on it"),
        ("shelved", me.user_id, "parts on the way"),
        ("unshelved", me.user_id, None),
    ]
    assert history[1].actor_email == tenant.admin_email and history[0].at.tzinfo is not None


def test_the_escalation_event_the_server_encodes_parses_typed() -> None:
    data = orjson.loads(wire.alert_escalated("a1", "m1", "critical", "warning", "p1", 1_700_000_000_000_000))
    event = parse_event(data)
    assert isinstance(event, AlertEscalated)
    assert (event.alert_id, event.machine_id, event.severity, event.previous_severity, event.policy_id) == (
        "a1",
        "m1",
        "critical",
        "warning",
        "p1",
    )
    assert event.escalated_at is not None

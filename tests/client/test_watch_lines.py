"""What `haltless watch` prints for each event type the server sends (no server: names come from memory)."""

from __future__ import annotations

import time

import pytest

from haltless.client import AsyncHaltlessClient
from haltless.client._events import parse_event
from haltless.client._watch import EVENT_TYPES, _line, _Names

MACHINE = "6f1c2b9e-3f4a-4c1d-9e2b-7a8b9c0d1e2f"
ALERT = "a1b2c3d4-0000-4000-8000-000000000001"
AT = "2026-12-03T10:00:00Z"

MESSAGES = {
    "alert_acknowledged": {"acknowledged_by": "u", "acknowledged_at": AT, "comment": "on it"},
    "alert_shelved": {"shelved_by": "u", "shelved_at": AT, "shelved_until": AT, "comment": "waiting for parts"},
    "alert_unshelved": {"unshelved_by": "u", "unshelved_at": AT},
    "alert_escalated": {"severity": "critical", "previous_severity": "warning", "policy_id": "p", "escalated_at": AT},
}
EXPECTED = {
    "alert_acknowledged": ("acknowledged", "Press 01", "on it"),
    "alert_shelved": ("shelved", "Press 01", "waiting for parts"),
    "alert_unshelved": ("unshelved", "Press 01", ALERT[:8]),
    "alert_escalated": ("escalated", "Press 01", "warning → critical"),
}


@pytest.mark.parametrize("kind", sorted(MESSAGES))
async def test_lifecycle_events_print_a_line_of_their_own(kind: str) -> None:
    assert kind in EVENT_TYPES  # selectable with --type
    names = _Names(AsyncHaltlessClient("http://127.0.0.1:9"), {MACHINE: "Press 01"}, time.monotonic())
    event = parse_event({"type": kind, "alert_id": ALERT, "machine_id": MACHINE, **MESSAGES[kind]})
    line = await _line(event, names)
    assert all(part in line for part in EXPECTED[kind]), line

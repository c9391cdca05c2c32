"""Wire format of the dashboard WebSocket: event shapes (fields in the guide's order) and close codes.

Each event is encoded exactly once into a `str` that is then shared by every recipient socket.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from enum import IntEnum

import orjson

from haltless.core.readings import Reading
from haltless.core.timefmt import format_micros, format_now


class CloseCode(IntEnum):
    """Every close code the dashboard socket sends; docs/websocket.md has the table."""

    # The server is shutting down or restarting; reconnect with backoff.
    GOING_AWAY = 1001
    # The first frame was binary; the token must be a text frame.
    UNSUPPORTED_DATA = 1003
    # The first frame was larger than MAX_AUTH_MESSAGE_BYTES.
    MESSAGE_TOO_BIG = 1009
    # Invalid, expired or wrong-type token (e.g. a refresh token); refresh and reconnect.
    INVALID_TOKEN = 4001
    # No token arrived within HALTLESS_WS_AUTH_TIMEOUT.
    AUTH_TIMEOUT = 4002
    # Too many connections are waiting to authenticate; back off and retry.
    TOO_MANY_PENDING = 4003
    # The user was disabled or deleted, signed out everywhere, got a new password or a new role; refresh the
    # access token once and reconnect, and if the refresh fails, log in again.
    SESSION_REVOKED = 4004
    # The client did not read fast enough and its send buffer overflowed; reconnect.
    SLOW_CONSUMER = 4008


# The first message carries a JWT (or a small JSON object with one); anything longer is refused.
MAX_AUTH_MESSAGE_BYTES = 16 * 1024


def heartbeat(now_micros: int) -> str:
    """`{"type": "heartbeat", "server_time": ...}`."""
    return orjson.dumps({"type": "heartbeat", "server_time": format_now(now_micros)}).decode()


def resync_required(reason: str) -> str:
    """Control message: events may have been missed; reload state over REST (it carries no event_id)."""
    return orjson.dumps({"type": "resync_required", "reason": reason}).decode()


@functools.lru_cache(maxsize=4096)
def _json_string(text: str) -> str:
    # A fleet has few machine ids, metric names and units: each is escaped by orjson once, then looked up.
    return orjson.dumps(text).decode()


def _json_number(value: float) -> str:
    text = repr(value)
    # Without an exponent repr is exactly orjson's shortest form; with one the spelling differs (1e-05).
    return text if "e" not in text else orjson.dumps(value).decode()


@functools.lru_cache(maxsize=16_384)
def _sensor_update_parts(machine_id: str, metric_name: str, unit: str) -> tuple[str, str]:
    # What a series' updates share: everything before the value, and between the value and the timestamp.
    head = (
        f'{{"type":"sensor_update","machine_id":{_json_string(machine_id)},'
        f'"metric_name":{_json_string(metric_name)},"value":'
    )
    return head, f',"unit":{_json_string(unit)},"timestamp":"'


def sensor_update(machine_id: str, metric_name: str, value: float, unit: str, ts_micros: int) -> str:
    """A `sensor_update` event with exactly the guide's fields in the guide's order.

    Hot path (one per ingested reading, bench M4): a template instead of orjson.dumps of a fresh dict costs
    half as much, and the parts a series repeats are escaped once and looked up together; the output is the
    same bytes (tests/core/test_wire.py checks it against orjson).
    """
    head, middle = _sensor_update_parts(machine_id, metric_name, unit)
    number = repr(value)
    if "e" in number:
        number = _json_number(value)
    return f'{head}{number}{middle}{format_micros(ts_micros)}"}}'


def sensor_updates(readings: Sequence[Reading]) -> list[str]:
    """`sensor_update` of each reading, in order: the same strings, made for a whole batch at once.

    Hot path (bench M4): `repr` of a float was a third of `sensor_update`'s cost; orjson writes all of a
    batch's values in one call instead (a JSON array of numbers, split at its commas: numbers hold none).
    """
    if not readings:
        return []
    numbers = orjson.dumps([reading.value for reading in readings])[1:-1].decode().split(",")
    parts = _sensor_update_parts
    stamp = format_micros
    return [
        f'{head}{number}{middle}{stamp(reading.ts)}"}}'
        for reading, number in zip(readings, numbers, strict=True)
        for head, middle in (parts(reading.machine_id, reading.metric_name, reading.unit),)
    ]


def alert(
    alert_id: str,
    machine_id: str,
    severity: str,
    message: str,
    metric_value: float,
    threshold_value: float,
    created_at_us: int,
) -> str:
    """An `alert` event with exactly the guide's fields in the guide's order."""
    return orjson.dumps(
        {
            "type": "alert",
            "alert_id": alert_id,
            "machine_id": machine_id,
            "severity": severity,
            "message": message,
            "metric_value": metric_value,
            "threshold_value": threshold_value,
            "created_at": format_micros(created_at_us),
        }
    ).decode()


def alert_resolved(alert_id: str, machine_id: str, severity: str, resolution: str, resolved_at_us: int) -> str:
    """Extension: an open alert was resolved (`resolution` says why: cleared, manual, rule_changed…)."""
    return orjson.dumps(
        {
            "type": "alert_resolved",
            "alert_id": alert_id,
            "machine_id": machine_id,
            "severity": severity,
            "resolution": resolution,
            "resolved_at": format_micros(resolved_at_us),
        }
    ).decode()


def alert_updated(alert_id: str, machine_id: str, message: str, predicted_crossing_at_us: int | None) -> str:
    """Extension: an open forecast alert's prediction moved (new message and predicted crossing time)."""
    return orjson.dumps(
        {
            "type": "alert_updated",
            "alert_id": alert_id,
            "machine_id": machine_id,
            "message": message,
            "predicted_crossing_at": None
            if predicted_crossing_at_us is None
            else format_micros(predicted_crossing_at_us),
        }
    ).decode()


def alert_acknowledged(
    alert_id: str, machine_id: str, acknowledged_by: str, acknowledged_at_us: int, comment: str | None = None
) -> str:
    """Extension: a user acknowledged an open alert; `comment` is there only when the user gave one."""
    event: dict[str, object] = {
        "type": "alert_acknowledged",
        "alert_id": alert_id,
        "machine_id": machine_id,
        "acknowledged_by": acknowledged_by,
        "acknowledged_at": format_micros(acknowledged_at_us),
    }
    if comment is not None:
        event["comment"] = comment
    return orjson.dumps(event).decode()


def alert_shelved(
    alert_id: str, machine_id: str, shelved_by: str, shelved_at_us: int, shelved_until_us: int, comment: str | None
) -> str:
    """Extension: a user shelved an open alert: no reminders or escalation until `shelved_until`."""
    return orjson.dumps(
        {
            "type": "alert_shelved",
            "alert_id": alert_id,
            "machine_id": machine_id,
            "shelved_by": shelved_by,
            "shelved_at": format_micros(shelved_at_us),
            "shelved_until": format_micros(shelved_until_us),
            "comment": comment,
        }
    ).decode()


def alert_unshelved(alert_id: str, machine_id: str, unshelved_by: str, unshelved_at_us: int) -> str:
    """Extension: a user took an alert off the shelf before the shelf ended."""
    return orjson.dumps(
        {
            "type": "alert_unshelved",
            "alert_id": alert_id,
            "machine_id": machine_id,
            "unshelved_by": unshelved_by,
            "unshelved_at": format_micros(unshelved_at_us),
        }
    ).decode()


def alert_escalated(
    alert_id: str, machine_id: str, severity: str, previous_severity: str, policy_id: str, escalated_at_us: int
) -> str:
    """Extension: a notification policy escalated an unacknowledged alert; `severity` differs from
    `previous_severity` when the policy raised it."""
    return orjson.dumps(
        {
            "type": "alert_escalated",
            "alert_id": alert_id,
            "machine_id": machine_id,
            "severity": severity,
            "previous_severity": previous_severity,
            "policy_id": policy_id,
            "escalated_at": format_micros(escalated_at_us),
        }
    ).decode()


def alert_flapping(alert_id: str, machine_id: str, rule_id: str, alerts_in_window: int, since_us: int) -> str:
    """Extension: the alert that just opened (its `alert` event came first) is flapping (core/flapping.py).
    `alerts_in_window`: how many alerts the rule opened on the machine within the window, this one included;
    `since`: the oldest of them."""
    return orjson.dumps(
        {
            "type": "alert_flapping",
            "alert_id": alert_id,
            "machine_id": machine_id,
            "rule_id": rule_id,
            "alerts_in_window": alerts_in_window,
            "since": format_micros(since_us),
        }
    ).decode()


def machine_status(machine_id: str, old_status: str, new_status: str, at_us: int) -> str:
    """A `machine_status` event with exactly the guide's fields in the guide's order."""
    return orjson.dumps(
        {
            "type": "machine_status",
            "machine_id": machine_id,
            "old_status": old_status,
            "new_status": new_status,
            "timestamp": format_micros(at_us),
        }
    ).decode()

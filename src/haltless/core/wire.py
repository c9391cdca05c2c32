"""Wire format of the dashboard WebSocket: event shapes (fields in the guide's order) and close codes.

Each event is encoded exactly once into a `str` that is then shared by every recipient socket.
"""

from __future__ import annotations

from enum import IntEnum

import orjson

from haltless.core.timefmt import format_micros


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
    # The client did not read fast enough and its send buffer overflowed; reconnect.
    SLOW_CONSUMER = 4008


# The first message carries a JWT (or a small JSON object with one); anything longer is refused.
MAX_AUTH_MESSAGE_BYTES = 16 * 1024


def heartbeat(now_micros: int) -> str:
    """`{"type": "heartbeat", "server_time": ...}`."""
    return orjson.dumps({"type": "heartbeat", "server_time": format_micros(now_micros)}).decode()


def sensor_update(machine_id: str, metric_name: str, value: float, unit: str, ts_micros: int) -> str:
    """A `sensor_update` event with exactly the guide's fields in the guide's order."""
    return orjson.dumps(
        {
            "type": "sensor_update",
            "machine_id": machine_id,
            "metric_name": metric_name,
            "value": value,
            "unit": unit,
            "timestamp": format_micros(ts_micros),
        }
    ).decode()


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


def alert_acknowledged(alert_id: str, machine_id: str, acknowledged_by: str, acknowledged_at_us: int) -> str:
    """Extension: a user acknowledged an open alert."""
    return orjson.dumps(
        {
            "type": "alert_acknowledged",
            "alert_id": alert_id,
            "machine_id": machine_id,
            "acknowledged_by": acknowledged_by,
            "acknowledged_at": format_micros(acknowledged_at_us),
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

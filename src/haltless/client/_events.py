"""Typed events of the dashboard stream, and the stream's own status changes.

Data events mirror the WebSocket guide's messages; `raw` keeps the full JSON object, including fields added by
later server versions. A message of a type this SDK does not know arrives as `Event` (never dropped, never an error).
Every event has `event_id`, the server's ordered id used to resume after a reconnect (None when the message has none:
heartbeats, `resync_required`, servers that predate resuming).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from haltless.client._models import parse_time


@dataclass(frozen=True, slots=True)
class Event:
    """Any message of the stream; the base of the typed events and the shape of unknown types."""

    type: str
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class Heartbeat(Event):
    """The server is alive; yielded only when the stream was opened with `heartbeats=True`."""

    server_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class SensorUpdate(Event):
    """A reading was ingested."""

    machine_id: str = ""
    metric_name: str = ""
    value: float = 0.0
    unit: str = ""
    timestamp: datetime | None = None


@dataclass(frozen=True, slots=True)
class Alert(Event):
    """An alert rule's threshold was crossed."""

    alert_id: str = ""
    machine_id: str = ""
    severity: str = ""
    message: str = ""
    metric_value: float | None = None
    threshold_value: float | None = None
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AlertResolved(Event):
    """An alert closed; `resolution` is cleared, manual, rule_changed, rule_disabled or rule_deleted."""

    alert_id: str = ""
    machine_id: str = ""
    severity: str = ""
    resolution: str = ""
    resolved_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AlertAcknowledged(Event):
    """A user acknowledged an open alert; `acknowledged_by` is their user id, `comment` what they said (if any)."""

    alert_id: str = ""
    machine_id: str = ""
    acknowledged_by: str = ""
    acknowledged_at: datetime | None = None
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class AlertShelved(Event):
    """A user shelved an open alert: no reminders or escalation until `shelved_until`."""

    alert_id: str = ""
    machine_id: str = ""
    shelved_by: str = ""
    shelved_at: datetime | None = None
    shelved_until: datetime | None = None
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class AlertUnshelved(Event):
    """A user took an alert off the shelf before its end."""

    alert_id: str = ""
    machine_id: str = ""
    unshelved_by: str = ""
    unshelved_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AlertEscalated(Event):
    """A notification policy escalated an unacknowledged alert; `severity` is higher than `previous_severity`
    when the policy raised it."""

    alert_id: str = ""
    machine_id: str = ""
    severity: str = ""
    previous_severity: str = ""
    policy_id: str = ""
    escalated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ResyncRequired(Event):
    """Events may have been missed (resume point lost, server restart, event bus gap): reload state over REST.

    The stream goes on with live events after it. Always yielded, whatever the stream's filters.
    """

    reason: str = ""


@dataclass(frozen=True, slots=True)
class MachineStatus(Event):
    """A machine's health status changed."""

    machine_id: str = ""
    old_status: str = ""
    new_status: str = ""
    timestamp: datetime | None = None


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _time(value: Any) -> datetime | None:
    return None if value is None else parse_time(value)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _event_id(data: Mapping[str, Any]) -> str | None:
    value = data.get("event_id")
    return value if isinstance(value, str) and value else None


def parse_event(data: Mapping[str, Any]) -> Event:
    """One decoded message as its typed event; a known type with a malformed body degrades to `Event`."""
    kind = str(data.get("type", ""))
    event_id = _event_id(data)
    try:
        if kind == "heartbeat":
            return Heartbeat(kind, data, event_id, server_time=_time(data.get("server_time")))
        if kind == "sensor_update":
            return SensorUpdate(
                kind,
                data,
                event_id,
                machine_id=str(data["machine_id"]),
                metric_name=str(data["metric_name"]),
                value=float(data["value"]),
                unit=str(data.get("unit") or ""),
                timestamp=_time(data.get("timestamp")),
            )
        if kind == "alert":
            return Alert(
                kind,
                data,
                event_id,
                alert_id=str(data.get("alert_id", "")),
                machine_id=str(data["machine_id"]),
                severity=str(data.get("severity", "")),
                message=str(data.get("message", "")),
                metric_value=_float(data.get("metric_value")),
                threshold_value=_float(data.get("threshold_value")),
                created_at=_time(data.get("created_at")),
            )
        if kind == "alert_resolved":
            return AlertResolved(
                kind,
                data,
                event_id,
                alert_id=str(data["alert_id"]),
                machine_id=str(data["machine_id"]),
                severity=str(data.get("severity", "")),
                resolution=str(data.get("resolution", "")),
                resolved_at=_time(data.get("resolved_at")),
            )
        if kind == "alert_acknowledged":
            return AlertAcknowledged(
                kind,
                data,
                event_id,
                alert_id=str(data["alert_id"]),
                machine_id=str(data["machine_id"]),
                acknowledged_by=str(data.get("acknowledged_by") or ""),
                acknowledged_at=_time(data.get("acknowledged_at")),
                comment=_text(data.get("comment")),
            )
        if kind == "alert_shelved":
            return AlertShelved(
                kind,
                data,
                event_id,
                alert_id=str(data["alert_id"]),
                machine_id=str(data["machine_id"]),
                shelved_by=str(data.get("shelved_by") or ""),
                shelved_at=_time(data.get("shelved_at")),
                shelved_until=_time(data.get("shelved_until")),
                comment=_text(data.get("comment")),
            )
        if kind == "alert_unshelved":
            return AlertUnshelved(
                kind,
                data,
                event_id,
                alert_id=str(data["alert_id"]),
                machine_id=str(data["machine_id"]),
                unshelved_by=str(data.get("unshelved_by") or ""),
                unshelved_at=_time(data.get("unshelved_at")),
            )
        if kind == "alert_escalated":
            return AlertEscalated(
                kind,
                data,
                event_id,
                alert_id=str(data["alert_id"]),
                machine_id=str(data["machine_id"]),
                severity=str(data.get("severity", "")),
                previous_severity=str(data.get("previous_severity", "")),
                policy_id=str(data.get("policy_id", "")),
                escalated_at=_time(data.get("escalated_at")),
            )
        if kind == "machine_status":
            return MachineStatus(
                kind,
                data,
                event_id,
                machine_id=str(data["machine_id"]),
                old_status=str(data.get("old_status", "")),
                new_status=str(data.get("new_status", "")),
                timestamp=_time(data.get("timestamp")),
            )
        if kind == "resync_required":
            return ResyncRequired(kind, data, event_id, reason=str(data.get("reason") or ""))
    except (KeyError, TypeError, ValueError):
        # A future server may reshape a message; the caller still gets it, untyped, instead of a dead stream.
        pass
    return Event(kind, data, event_id)


@dataclass(frozen=True, slots=True)
class StreamStatus:
    """A change in the stream's connection; delivered to `on_status` and, with `status_events=True`, yielded."""

    @property
    def type(self) -> str:
        return "stream_status"


@dataclass(frozen=True, slots=True)
class Connected(StreamStatus):
    """The socket is open and authenticated (the server's first heartbeat arrived)."""

    url: str
    attempt: int  # how many failed attempts came before this one since the last healthy connection


@dataclass(frozen=True, slots=True)
class Reconnecting(StreamStatus):
    """The connection is down; the next attempt starts after `delay` seconds."""

    delay: float
    attempt: int  # 1 for the first retry after a drop, counting up until a connection stays healthy
    reason: str


@dataclass(frozen=True, slots=True)
class GaveUp(StreamStatus):
    """The stream stopped trying; the iteration raises the matching exception next."""

    reason: str

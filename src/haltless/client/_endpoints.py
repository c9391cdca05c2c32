"""One function per REST endpoint: the `Call` that both clients send. Adding an endpoint means adding it here
and one thin method to each client."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from haltless.client._base import API_PREFIX, Call, IngestBatch
from haltless.client._models import (
    AlertPage,
    AlertRecord,
    AlertRule,
    AnomalySeries,
    ForecastSeries,
    HistoryPage,
    IngestResult,
    Machine,
    MachineLatest,
    MachinePage,
    Me,
    alert_rules_from_json,
    format_time,
)


class Unset:
    """The type of UNSET: "leave this field as it is" in updates, unlike None, which clears it."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET = Unset()

_MACHINES = f"{API_PREFIX}/machines"
_ALERT_RULES = f"{API_PREFIX}/alert-rules"
_ALERTS = f"{API_PREFIX}/alerts"
_DERIVED = f"{API_PREFIX}/sensor-data/derived"


def _none(_data: Any) -> None:
    return None


def me() -> Call[Me]:
    return Call("GET", f"{API_PREFIX}/auth/me", Me.from_json)


def list_machines(limit: int, offset: int) -> Call[MachinePage]:
    return Call("GET", _MACHINES, MachinePage.from_json, params={"limit": limit, "offset": offset})


def get_machine(machine_id: str) -> Call[Machine]:
    return Call("GET", f"{_MACHINES}/{machine_id}", Machine.from_json)


def create_machine(name: str, location: str | None, tags: Iterable[str]) -> Call[Machine]:
    body: dict[str, Any] = {"name": name, "tags": list(tags)}
    if location is not None:
        body["location"] = location
    return Call("POST", _MACHINES, Machine.from_json, json=body)


def update_machine(
    machine_id: str, name: str | Unset, location: str | Unset | None, tags: Iterable[str] | Unset
) -> Call[Machine]:
    body: dict[str, Any] = {}
    if not isinstance(name, Unset):
        body["name"] = name
    if not isinstance(location, Unset):
        body["location"] = location
    if not isinstance(tags, Unset):
        body["tags"] = list(tags)
    return Call("PATCH", f"{_MACHINES}/{machine_id}", Machine.from_json, json=body)


def delete_machine(machine_id: str) -> Call[None]:
    return Call("DELETE", f"{_MACHINES}/{machine_id}", _none)


def latest(machine_id: str) -> Call[MachineLatest]:
    return Call("GET", f"{_MACHINES}/{machine_id}/latest", MachineLatest.from_json)


def ingest_batch(batch: IngestBatch) -> Call[IngestResult]:
    def parse(data: Any) -> IngestResult:
        return IngestResult.from_json(data, index_offset=batch.offset)

    return Call("POST", f"{API_PREFIX}/sensor-data", parse, content=batch.body)


def history(
    machine_id: str,
    metric_names: str | Iterable[str],
    start: datetime | str | None,
    end: datetime | str | None,
    interval: str | None,
    max_points: int | None,
    limit: int | None,
    cursor: str | None,
) -> Call[HistoryPage]:
    metrics = [metric_names] if isinstance(metric_names, str) else list(metric_names)
    params: dict[str, Any] = {
        "machine_id": machine_id,
        "metric_name": metrics,
        "start": format_time(start) if start is not None else None,
        "end": format_time(end) if end is not None else None,
        "interval": interval,
        "max_points": max_points,
        "limit": limit,
        "cursor": cursor,
    }
    return Call("GET", f"{API_PREFIX}/sensor-data", HistoryPage.from_json, params=params)


def derived_anomaly(
    machine_id: str,
    metric_name: str,
    start: datetime | str | None,
    end: datetime | str | None,
    rule_id: str | None,
    sensitivity: str | None,
    limit: int | None,
) -> Call[AnomalySeries]:
    params: dict[str, Any] = {
        **_derived_params(machine_id, metric_name, "anomaly", start, end, rule_id, limit),
        "sensitivity": sensitivity,
    }
    return Call("GET", _DERIVED, AnomalySeries.from_json, params=params)


def derived_forecast(
    machine_id: str,
    metric_name: str,
    start: datetime | str | None,
    end: datetime | str | None,
    rule_id: str | None,
    condition: str | None,
    threshold: float | None,
    horizon_seconds: float | None,
    limit: int | None,
) -> Call[ForecastSeries]:
    params: dict[str, Any] = {
        **_derived_params(machine_id, metric_name, "forecast", start, end, rule_id, limit),
        "condition": condition,
        "threshold": threshold,
        "horizon_seconds": horizon_seconds,
    }
    return Call("GET", _DERIVED, ForecastSeries.from_json, params=params)


def _derived_params(
    machine_id: str,
    metric_name: str,
    kind: str,
    start: datetime | str | None,
    end: datetime | str | None,
    rule_id: str | None,
    limit: int | None,
) -> dict[str, Any]:
    return {
        "machine_id": machine_id,
        "metric_name": metric_name,
        "kind": kind,
        "start": format_time(start) if start is not None else None,
        "end": format_time(end) if end is not None else None,
        "rule_id": rule_id,
        "limit": limit,
    }


def list_alert_rules() -> Call[list[AlertRule]]:
    return Call("GET", _ALERT_RULES, alert_rules_from_json)


def get_alert_rule(rule_id: str) -> Call[AlertRule]:
    return Call("GET", f"{_ALERT_RULES}/{rule_id}", AlertRule.from_json)


def create_alert_rule(
    name: str,
    metric_name: str,
    kind: str,
    kind_fields: Mapping[str, Any],
    machine_id: str | None,
    severity: str,
    for_seconds: float,
    hysteresis: float,
    enabled: bool,
    message: str | None,
) -> Call[AlertRule]:
    """A rule of `kind` (threshold, anomaly, forecast) with its own fields (`kind_fields`; None ones are left out:
    the server refuses a field another kind takes, docs/alerts.md)."""
    body: dict[str, Any] = {
        "name": name,
        "metric_name": metric_name,
        "machine_id": machine_id,
        "kind": kind,
        **{key: value for key, value in kind_fields.items() if value is not None},
        "severity": severity,
        "for_seconds": for_seconds,
        "hysteresis": hysteresis,
        "enabled": enabled,
        "message": message,
    }
    return Call("POST", _ALERT_RULES, AlertRule.from_json, json=body)


def update_alert_rule(rule_id: str, changes: dict[str, Any]) -> Call[AlertRule]:
    """`changes` maps field names to new values; UNSET values are left out (None is sent: it clears)."""
    body = {key: value for key, value in changes.items() if not isinstance(value, Unset)}
    return Call("PATCH", f"{_ALERT_RULES}/{rule_id}", AlertRule.from_json, json=body)


def delete_alert_rule(rule_id: str) -> Call[None]:
    return Call("DELETE", f"{_ALERT_RULES}/{rule_id}", _none)


def list_alerts(
    state: str | None,
    machine_id: str | None,
    severity: str | None,
    rule_id: str | None,
    limit: int | None,
    cursor: str | None,
) -> Call[AlertPage]:
    params: dict[str, Any] = {
        "state": state,
        "machine_id": machine_id,
        "severity": severity,
        "rule_id": rule_id,
        "limit": limit,
        "cursor": cursor,
    }
    return Call("GET", _ALERTS, AlertPage.from_json, params=params)


def get_alert(alert_id: str) -> Call[AlertRecord]:
    return Call("GET", f"{_ALERTS}/{alert_id}", AlertRecord.from_json)


def acknowledge_alert(alert_id: str) -> Call[AlertRecord]:
    return Call("POST", f"{_ALERTS}/{alert_id}/acknowledge", AlertRecord.from_json)


def resolve_alert(alert_id: str) -> Call[AlertRecord]:
    return Call("POST", f"{_ALERTS}/{alert_id}/resolve", AlertRecord.from_json)

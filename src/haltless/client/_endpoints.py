"""One function per REST endpoint: the `Call` that both clients send. Adding an endpoint means adding it here
and one thin method to each client."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from haltless.client._base import API_PREFIX, Call, IngestBatch
from haltless.client._models import (
    HistoryPage,
    IngestResult,
    Machine,
    MachineLatest,
    MachinePage,
    Me,
    format_time,
)


class Unset:
    """The type of UNSET: "leave this field as it is" in updates, unlike None, which clears it."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET = Unset()

_MACHINES = f"{API_PREFIX}/machines"


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

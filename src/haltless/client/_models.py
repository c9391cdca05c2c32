"""Typed results of the REST API, parsed from the server's JSON. Unknown extra fields are ignored."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


def parse_time(value: Any) -> datetime:
    """An ISO 8601 time from the server (`...Z`) as an aware UTC datetime."""
    return datetime.fromisoformat(str(value)).astimezone(UTC)


def parse_optional_time(value: Any) -> datetime | None:
    return None if value is None else parse_time(value)


def format_time(value: datetime | str) -> str:
    """A datetime as the server's ISO 8601 UTC form; naive datetimes are taken as UTC; strings pass through."""
    if isinstance(value, str):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class TokenPair:
    """What login and refresh return."""

    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "bearer"

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TokenPair:
        return cls(
            access_token=str(data["access_token"]),
            refresh_token=str(data["refresh_token"]),
            expires_in=int(data.get("expires_in", 0)),
            token_type=str(data.get("token_type", "bearer")),
        )


@dataclass(frozen=True, slots=True)
class Me:
    """The calling user."""

    user_id: str
    tenant_id: str
    email: str
    role: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Me:
        return cls(str(data["user_id"]), str(data["tenant_id"]), str(data["email"]), str(data["role"]))


@dataclass(frozen=True, slots=True)
class Machine:
    """A machine of the tenant; `status` is healthy, warning, critical, offline or maintenance."""

    id: str
    name: str
    location: str | None
    tags: tuple[str, ...]
    status: str
    last_seen_at: datetime | None
    created_at: datetime | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Machine:
        return cls(
            id=str(data["id"]),
            name=str(data["name"]),
            location=data.get("location"),
            tags=tuple(data.get("tags") or ()),
            status=str(data["status"]),
            last_seen_at=parse_optional_time(data.get("last_seen_at")),
            created_at=parse_optional_time(data.get("created_at")),
        )


@dataclass(frozen=True, slots=True)
class MachinePage:
    """One page of `GET /machines`."""

    items: tuple[Machine, ...]
    total: int
    limit: int
    offset: int

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MachinePage:
        return cls(
            items=tuple(Machine.from_json(item) for item in data["items"]),
            total=int(data["total"]),
            limit=int(data["limit"]),
            offset=int(data["offset"]),
        )


@dataclass(frozen=True, slots=True)
class LatestReading:
    """The newest reading of one metric."""

    metric_name: str
    value: float
    unit: str
    timestamp: datetime
    received_at: datetime | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LatestReading:
        return cls(
            metric_name=str(data["metric_name"]),
            value=float(data["value"]),
            unit=str(data.get("unit") or ""),
            timestamp=parse_time(data["timestamp"]),
            received_at=parse_optional_time(data.get("received_at")),
        )


@dataclass(frozen=True, slots=True)
class MachineLatest:
    """`GET /machines/{id}/latest`: the newest reading of each metric; `by_metric` indexes them."""

    machine_id: str
    readings: tuple[LatestReading, ...]

    @property
    def by_metric(self) -> dict[str, LatestReading]:
        return {reading.metric_name: reading for reading in self.readings}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MachineLatest:
        return cls(str(data["machine_id"]), tuple(LatestReading.from_json(r) for r in data["readings"]))


@dataclass(frozen=True, slots=True)
class Reading:
    """One reading to ingest; `reading_id` makes a retry idempotent (the server counts a repeat as duplicate)."""

    machine_id: str
    metric_name: str
    value: float
    unit: str | None = None
    timestamp: datetime | str | None = None
    reading_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"machine_id": self.machine_id, "metric_name": self.metric_name, "value": self.value}
        if self.unit is not None:
            body["unit"] = self.unit
        if self.timestamp is not None:
            body["timestamp"] = format_time(self.timestamp)
        if self.reading_id is not None:
            body["reading_id"] = self.reading_id
        return body


@dataclass(frozen=True, slots=True)
class Rejection:
    """A reading the server refused; `index` is its position in the list given to `ingest`."""

    index: int
    detail: str


@dataclass(frozen=True, slots=True)
class IngestResult:
    """The outcome of `ingest`, summed over every request it took."""

    accepted: int = 0
    duplicates: int = 0
    rejected: tuple[Rejection, ...] = field(default_factory=tuple)
    requests: int = 0

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, index_offset: int = 0) -> IngestResult:
        rejected = tuple(
            Rejection(index=int(item["index"]) + index_offset, detail=str(item["detail"]))
            for item in data.get("rejected") or ()
        )
        return cls(int(data["accepted"]), int(data["duplicates"]), rejected, requests=1)

    def __add__(self, other: IngestResult) -> IngestResult:
        return IngestResult(
            self.accepted + other.accepted,
            self.duplicates + other.duplicates,
            self.rejected + other.rejected,
            self.requests + other.requests,
        )


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    """One stored reading of `GET /sensor-data` (raw mode)."""

    metric_name: str
    timestamp: datetime
    value: float
    unit: str


@dataclass(frozen=True, slots=True)
class HistoryBucket:
    """One bucket of `GET /sensor-data?interval=…`: `timestamp` is the bucket's start."""

    metric_name: str
    timestamp: datetime
    avg: float
    min: float
    max: float
    count: int
    last: float


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """One page of history: raw points (`interval` None; follow `next_cursor`) or buckets (one page holds all)."""

    machine_id: str
    metric_names: tuple[str, ...]
    start: datetime
    end: datetime
    interval: str | None
    items: tuple[HistoryPoint, ...] | tuple[HistoryBucket, ...]
    next_cursor: str | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HistoryPage:
        items: tuple[HistoryPoint, ...] | tuple[HistoryBucket, ...]
        if data.get("interval") is None:
            items = tuple(
                HistoryPoint(str(i["metric_name"]), parse_time(i["timestamp"]), float(i["value"]), str(i["unit"]))
                for i in data["items"]
            )
        else:
            items = tuple(
                HistoryBucket(
                    str(i["metric_name"]),
                    parse_time(i["timestamp"]),
                    float(i["avg"]),
                    float(i["min"]),
                    float(i["max"]),
                    int(i["count"]),
                    float(i["last"]),
                )
                for i in data["items"]
            )
        return cls(
            machine_id=str(data["machine_id"]),
            metric_names=tuple(data.get("metric_names") or ()),
            start=parse_time(data["start"]),
            end=parse_time(data["end"]),
            interval=data.get("interval"),
            items=items,
            next_cursor=data.get("next_cursor"),
        )


@dataclass(frozen=True, slots=True)
class AlertRule:
    """An alert rule (docs/alerts.md): `kind` threshold (`value <condition> threshold` on `metric_name` opens an
    alert), anomaly (unusual values, at a `sensitivity`) or forecast (the trend crosses `condition threshold`
    within `horizon_seconds`)."""

    id: str
    name: str
    metric_name: str
    machine_id: str | None  # None: every machine of the tenant
    condition: str | None  # >, >=, <, <=; None for an anomaly rule
    threshold: float | None  # None for an anomaly rule
    severity: str  # info, warning, critical
    for_seconds: float
    hysteresis: float
    enabled: bool
    message: str | None
    created_at: datetime
    updated_at: datetime
    kind: str = "threshold"  # threshold, anomaly or forecast
    sensitivity: str | None = None  # anomaly: low, medium, high
    horizon_seconds: float | None = None  # forecast
    window_readings: int | None = None  # forecast; None: the server's default window

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AlertRule:
        return cls(
            id=str(data["id"]),
            name=str(data["name"]),
            metric_name=str(data["metric_name"]),
            machine_id=data.get("machine_id"),
            condition=None if data.get("condition") is None else str(data["condition"]),
            threshold=None if data.get("threshold") is None else float(data["threshold"]),
            severity=str(data["severity"]),
            for_seconds=float(data.get("for_seconds") or 0.0),
            hysteresis=float(data.get("hysteresis") or 0.0),
            enabled=bool(data.get("enabled", True)),
            message=data.get("message"),
            created_at=parse_time(data["created_at"]),
            updated_at=parse_time(data["updated_at"]),
            kind=str(data.get("kind") or "threshold"),
            sensitivity=data.get("sensitivity"),
            horizon_seconds=None if data.get("horizon_seconds") is None else float(data["horizon_seconds"]),
            window_readings=None if data.get("window_readings") is None else int(data["window_readings"]),
        )


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """A stored alert of `GET /alerts`; `state` is active, acknowledged or resolved.

    Named apart from the stream's `Alert` event, which announces an alert as it opens.
    """

    id: str
    rule_id: str | None  # None once its rule was deleted
    machine_id: str
    metric_name: str
    severity: str
    message: str
    metric_value: float
    threshold_value: float
    state: str
    created_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    resolution: str | None  # cleared, manual, rule_changed, rule_disabled, rule_deleted
    predicted_crossing_at: datetime | None = None  # forecast alerts: when the trend is predicted to cross

    @property
    def is_open(self) -> bool:
        return self.state != "resolved"

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AlertRecord:
        return cls(
            id=str(data["id"]),
            rule_id=data.get("rule_id"),
            machine_id=str(data["machine_id"]),
            metric_name=str(data["metric_name"]),
            severity=str(data["severity"]),
            message=str(data["message"]),
            metric_value=float(data["metric_value"]),
            threshold_value=float(data["threshold_value"]),
            state=str(data["state"]),
            created_at=parse_time(data["created_at"]),
            acknowledged_at=parse_optional_time(data.get("acknowledged_at")),
            acknowledged_by=data.get("acknowledged_by"),
            resolved_at=parse_optional_time(data.get("resolved_at")),
            resolved_by=data.get("resolved_by"),
            resolution=data.get("resolution"),
            predicted_crossing_at=parse_optional_time(data.get("predicted_crossing_at")),
        )


@dataclass(frozen=True, slots=True)
class AlertPage:
    """One page of `GET /alerts`, newest first; pass `next_cursor` back as `cursor` (None: last page)."""

    items: tuple[AlertRecord, ...]
    next_cursor: str | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AlertPage:
        return cls(tuple(AlertRecord.from_json(item) for item in data["items"]), data.get("next_cursor"))


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True, slots=True)
class AnomalyPoint:
    """One reading as an anomaly rule judged it, from the readings before it only: `score` 0..1, the `expected`
    value and band `low`..`high` (None while warming up)."""

    timestamp: datetime
    value: float
    score: float
    expected: float | None
    low: float | None
    high: float | None
    warming_up: bool
    anomalous: bool

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AnomalyPoint:
        return cls(
            timestamp=parse_time(data["timestamp"]),
            value=float(data["value"]),
            score=float(data["score"]),
            expected=_optional_float(data.get("expected")),
            low=_optional_float(data.get("low")),
            high=_optional_float(data.get("high")),
            warming_up=bool(data["warming_up"]),
            anomalous=bool(data["anomalous"]),
        )


@dataclass(frozen=True, slots=True)
class AnomalySeries:
    """`GET /sensor-data/derived?kind=anomaly`: the anomaly score of each reading in [start, end)."""

    machine_id: str
    metric_name: str
    rule_id: str | None  # None: the query's own parameters, no stored rule
    start: datetime
    end: datetime
    truncated: bool  # the range held more readings than `limit`
    sensitivity: str
    score_threshold: float  # a score at or above it is anomalous
    items: tuple[AnomalyPoint, ...]

    @property
    def anomalies(self) -> tuple[AnomalyPoint, ...]:
        return tuple(point for point in self.items if point.anomalous)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AnomalySeries:
        return cls(
            machine_id=str(data["machine_id"]),
            metric_name=str(data["metric_name"]),
            rule_id=data.get("rule_id"),
            start=parse_time(data["start"]),
            end=parse_time(data["end"]),
            truncated=bool(data["truncated"]),
            sensitivity=str(data["sensitivity"]),
            score_threshold=float(data["score_threshold"]),
            items=tuple(AnomalyPoint.from_json(item) for item in data["items"]),
        )


@dataclass(frozen=True, slots=True)
class ForecastPoint:
    """The forecast as of one reading: the trend's `level` and slope, whether it is `trending` (significant and
    steady), and when it crosses the threshold (`crossing_at`, within `earliest_at`..`latest_at`; None when it
    does not head there)."""

    timestamp: datetime
    ready: bool  # enough readings in the window to fit a trend
    level: float | None
    slope_per_hour: float
    trending: bool
    will_cross: bool
    crossing_at: datetime | None
    earliest_at: datetime | None
    latest_at: datetime | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ForecastPoint:
        return cls(
            timestamp=parse_time(data["timestamp"]),
            ready=bool(data["ready"]),
            level=_optional_float(data.get("level")),
            slope_per_hour=float(data["slope_per_hour"]),
            trending=bool(data["trending"]),
            will_cross=bool(data["will_cross"]),
            crossing_at=parse_optional_time(data.get("crossing_at")),
            earliest_at=parse_optional_time(data.get("earliest_at")),
            latest_at=parse_optional_time(data.get("latest_at")),
        )


@dataclass(frozen=True, slots=True)
class ForecastSeries:
    """`GET /sensor-data/derived?kind=forecast`: forecasts as of readings in [start, end) (about 500 of them over
    long ranges, and the last); `forecast` is the one as of the newest reading (None without readings)."""

    machine_id: str
    metric_name: str
    rule_id: str | None
    start: datetime
    end: datetime
    truncated: bool
    threshold: float
    direction: str  # above or below
    horizon_seconds: float
    items: tuple[ForecastPoint, ...]
    forecast: ForecastPoint | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ForecastSeries:
        latest = data.get("forecast")
        return cls(
            machine_id=str(data["machine_id"]),
            metric_name=str(data["metric_name"]),
            rule_id=data.get("rule_id"),
            start=parse_time(data["start"]),
            end=parse_time(data["end"]),
            truncated=bool(data["truncated"]),
            threshold=float(data["threshold"]),
            direction=str(data["direction"]),
            horizon_seconds=float(data["horizon_seconds"]),
            items=tuple(ForecastPoint.from_json(item) for item in data["items"]),
            forecast=None if latest is None else ForecastPoint.from_json(latest),
        )


def alert_rules_from_json(data: Any) -> list[AlertRule]:
    """The body of `GET /alert-rules`: a JSON list of rules."""
    return [AlertRule.from_json(item) for item in data]

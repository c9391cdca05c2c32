"""`GET /api/v1/sensor-data/derived`: the anomaly score and expected band, or the forecast, of one metric.

Computed from stored history through the same detector code the rules use (core/predictive.py): each point is
judged from the readings before it only, starting from the readings before `start` as context (no look-ahead).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query
from fastapi.responses import Response

from haltless.core import predictive
from haltless.core.anomaly import Sensitivity
from haltless.core.forecast import Forecast
from haltless.core.history import resolve_query
from haltless.core.readings import normalize_uuid
from haltless.core.rules import Condition, Rule, RuleKind, Severity
from haltless.core.timefmt import format_micros
from haltless.errors import InvalidRequest
from haltless.server.http.security import State, Viewer
from haltless.server.routes.sensor_history import End, MachineId, Start, _check_machine
from haltless.store import alerts as alert_store
from haltless.store import readings as reading_store

router = APIRouter(prefix="/api/v1/sensor-data", tags=["sensor data"])

DEFAULT_DERIVED_LIMIT = 2000
MAX_DERIVED_LIMIT = 10_000
# A forecast costs ~75 µs to fit; over a long range it is given for about this many readings (and the last).
FORECAST_POINTS = 500


def _time(value: int | None) -> str | None:
    return None if value is None else format_micros(value)


def _forecast_item(forecast: Forecast) -> dict[str, Any]:
    return {
        "timestamp": format_micros(forecast.as_of_us),
        "ready": forecast.ready,
        "level": predictive.finite_or_none(forecast.level),
        "slope_per_hour": forecast.slope_per_s * 3600.0,
        "trending": forecast.trending,
        "will_cross": forecast.will_cross,
        "crossing_at": _time(forecast.crossing_us),
        "earliest_at": _time(forecast.earliest_us),
        "latest_at": _time(forecast.latest_us),
    }


async def _rule(
    state: Any,
    tenant_id: str,
    kind: RuleKind,
    metric_name: str,
    rule_id: str | None,
    sensitivity: Sensitivity | None,
    condition: Condition | None,
    threshold: float | None,
    horizon_seconds: float | None,
) -> Rule:
    """The rule whose detector to run: a stored one (`rule_id`), or one made of the query's parameters."""
    if rule_id is not None:
        normalized = normalize_uuid(rule_id)
        found = None
        if normalized is not None:
            async with state.engine.connect() as conn:
                found = await alert_store.get_rule(conn, tenant_id=tenant_id, rule_id=normalized)
        if found is None:
            raise InvalidRequest("rule_id: no such alert rule in this tenant")
        rule = found[0]
        if rule.kind is not kind or rule.metric_name != metric_name:
            raise InvalidRequest(f"rule_id: not a {kind.value} rule of metric {metric_name}")
        return rule
    if kind is RuleKind.FORECAST and (threshold is None or condition is None or horizon_seconds is None):
        raise InvalidRequest("a forecast needs rule_id, or condition, threshold and horizon_seconds")
    return Rule(
        id="",
        tenant_id=tenant_id,
        name="",
        metric_name=metric_name,
        machine_id=None,
        condition=condition or Condition.GE,
        threshold=threshold if threshold is not None else 0.0,
        severity=Severity.INFO,
        for_seconds=0.0,
        hysteresis=0.0,
        enabled=True,
        message=None,
        kind=kind,
        sensitivity=(sensitivity or Sensitivity.MEDIUM).value,
        horizon_seconds=horizon_seconds,
    )


@router.get("/derived")
async def read_derived(
    principal: Viewer,
    state: State,
    machine_id: MachineId,
    metric_name: Annotated[str, Query(description="One metric.")],
    kind: Annotated[Literal["anomaly", "forecast"], Query(description="Which derived series.")],
    start: Start = None,
    end: End = None,
    rule_id: Annotated[str | None, Query(description="Use this rule's parameters (same kind and metric).")] = None,
    sensitivity: Annotated[Sensitivity | None, Query(description="anomaly without rule_id (default medium)")] = None,
    condition: Annotated[Condition | None, Query(description="forecast without rule_id")] = None,
    threshold: Annotated[float | None, Query(description="forecast without rule_id")] = None,
    horizon_seconds: Annotated[float | None, Query(gt=0, description="forecast without rule_id")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_DERIVED_LIMIT, description="Readings of the range.")] = (
        DEFAULT_DERIVED_LIMIT
    ),
) -> Response:
    """Per reading in [start, end): the anomaly score, expected value and band, or the forecast as of it."""
    query = resolve_query(
        machine_id=normalize_uuid(machine_id) or machine_id,
        metric_names=[metric_name],
        start=start,
        end=end,
        interval=None,
        max_points=None,
        limit=1,
        cursor=None,
        cursors=state.cursors,
        now_us=state.clock.now_us(),
    )
    if len(query.metric_names) != 1:
        raise InvalidRequest("metric_name: exactly one metric")
    if threshold is not None and not abs(threshold) < float("inf"):
        raise InvalidRequest("threshold: must be a finite number")
    name = query.metric_names[0]
    found_machine = await _check_machine(state, principal.tenant_id, machine_id)
    rule_kind = RuleKind(kind)
    rule = await _rule(
        state, principal.tenant_id, rule_kind, name, rule_id, sensitivity, condition, threshold, horizon_seconds
    )
    async with state.engine.connect() as conn:
        before_ts, before_values = await reading_store.series_before(
            conn,
            machine_id=found_machine,
            metric_name=name,
            before=query.start_us,
            up_to=None,
            limit=predictive.history_needed(rule),
        )
        stamps, values = await reading_store.series_between(
            conn, machine_id=found_machine, metric_name=name, start=query.start_us, end=query.end_us, limit=limit + 1
        )
    truncated = len(stamps) > limit
    stamps, values = before_ts + stamps[:limit], before_values + values[:limit]
    first = len(before_ts)
    body: dict[str, Any] = {
        "machine_id": found_machine,
        "metric_name": name,
        "kind": kind,
        "rule_id": rule.id or None,
        "start": format_micros(query.start_us),
        "end": format_micros(query.end_us),
        "truncated": truncated,
    }
    if rule_kind is RuleKind.ANOMALY:
        body["sensitivity"] = rule.sensitivity
        body["score_threshold"] = Sensitivity(rule.sensitivity or Sensitivity.MEDIUM).threshold
        body["items"] = [
            {
                "timestamp": format_micros(s.timestamp_us),
                "value": s.value,
                "score": s.score,
                "expected": predictive.finite_or_none(s.expected),
                "low": predictive.finite_or_none(s.low),
                "high": predictive.finite_or_none(s.high),
                "warming_up": s.warming_up,
                "anomalous": s.anomalous,
            }
            for s in predictive.derive_anomaly(rule, stamps, values, first)
        ]
    else:
        every = max(1, (len(stamps) - first) // FORECAST_POINTS)
        forecasts = predictive.derive_forecast(rule, stamps, values, first, every)
        body["threshold"] = rule.threshold
        body["direction"] = predictive.direction_of(rule.condition).value
        body["horizon_seconds"] = rule.horizon_seconds
        body["items"] = [_forecast_item(f) for f in forecasts]
        body["forecast"] = _forecast_item(forecasts[-1]) if forecasts else None
    return Response(orjson.dumps(body), media_type="application/json")

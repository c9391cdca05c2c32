"""Anomaly and forecast rules through the SDK against a real server: creating and editing each kind, the alerts
they open, and the derived series (`GET /sensor-data/derived`) as typed results."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from haltless.client import (
    UNSET,
    AlertRule,
    AnomalyPoint,
    AnomalySeries,
    AsyncHaltlessClient,
    ForecastPoint,
    ForecastSeries,
    HaltlessClient,
    Reading,
    ValidationError,
)
from haltless.client import _endpoints as api
from tests.conftest import PASSWORD, RunningServer, Tenant

START = datetime(2026, 1, 5, tzinfo=UTC)
PERIOD = timedelta(seconds=10)
STEP_AT = 1200


def at(index: int) -> datetime:
    return START + index * PERIOD


def readings(machine_id: str, values: list[float], start: int = 0) -> list[Reading]:
    return [
        Reading(machine_id, "temperature", value, "celsius", timestamp=at(start + offset))
        for offset, value in enumerate(values)
    ]


def noise(count: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [round(60.0 + rng.gauss(0.0, 0.5), 3) for _ in range(count)]


async def test_an_anomaly_rule_is_created_edited_and_its_score_read(server: RunningServer, tenant: Tenant) -> None:
    async with AsyncHaltlessClient(server.base_url, email=tenant.admin_email, password=PASSWORD) as client:
        machine = await client.create_machine("Spindle 1")
        rule = await client.create_anomaly_rule("Unusual temperature", "temperature", machine_id=machine.id)
        assert isinstance(rule, AlertRule)
        assert (rule.kind, rule.sensitivity, rule.condition, rule.threshold, rule.machine_id) == (
            "anomaly",
            "medium",
            None,
            None,
            machine.id,
        )
        await client.ingest(readings(machine.id, noise(STEP_AT, seed=2)))
        assert (await client.list_alerts(rule_id=rule.id)).items == ()
        # A step of 5 °C (10 sigma) after 1,200 quiet readings opens the alert at its first reading.
        await client.ingest(readings(machine.id, [v + 5.0 for v in noise(12, seed=9)], start=STEP_AT))
        [alert] = (await client.list_alerts(rule_id=rule.id)).items
        assert alert.created_at == at(STEP_AT)
        assert alert.message.startswith("Temperature is unusual: ")
        assert alert.predicted_crossing_at is None

        series = await client.derived_anomaly(
            machine.id, "temperature", rule_id=rule.id, start=at(1100), end=at(STEP_AT + 12)
        )
        assert isinstance(series, AnomalySeries)
        assert (series.rule_id, series.sensitivity, series.score_threshold, series.truncated) == (
            rule.id,
            "medium",
            0.5,
            False,
        )
        assert len(series.items) == 112 and all(isinstance(p, AnomalyPoint) for p in series.items)
        assert series.items[0].timestamp == at(1100)
        step = series.anomalies[0]
        assert step.timestamp == at(STEP_AT) and step.score >= series.score_threshold
        assert step.low is not None and step.expected is not None and step.high is not None
        assert step.low <= step.expected <= step.high < step.value
        # Without a rule: the query's own sensitivity.
        high = await client.derived_anomaly(
            machine.id, "temperature", sensitivity="high", start=at(1100), end=at(STEP_AT + 12)
        )
        assert (high.rule_id, high.sensitivity) == (None, "high")
        assert high.score_threshold < series.score_threshold

        edited = await client.update_alert_rule(rule.id, sensitivity="low", hysteresis=0.1)
        assert (edited.kind, edited.sensitivity, edited.hysteresis) == ("anomaly", "low", 0.1)
        # A parameter of another kind is refused with the server's reason.
        with pytest.raises(ValidationError) as refused:
            await client.update_alert_rule(rule.id, horizon_seconds=600.0)
        assert "horizon_seconds: not a parameter of anomaly rules" in str(refused.value.detail)
        with pytest.raises(ValidationError) as unknown:
            await client.create_anomaly_rule("Odd", "temperature", sensitivity="extreme")
        assert "sensitivity" in str(unknown.value.detail)


def test_a_forecast_rule_alerts_before_the_crossing_and_serves_its_forecast(
    server: RunningServer, tenant: Tenant
) -> None:
    with HaltlessClient(server.base_url, email=tenant.admin_email, password=PASSWORD) as client:
        machine = client.create_machine("Oven 1")
        rule = client.create_forecast_rule(
            "Will overheat", "temperature", ">", 90.0, 3600.0, machine_id=machine.id, severity="info"
        )
        assert (rule.kind, rule.condition, rule.threshold, rule.horizon_seconds, rule.window_readings) == (
            "forecast",
            ">",
            90.0,
            3600.0,
            None,
        )
        rng = random.Random(3)
        drift = [round(60.0 + rng.gauss(0.0, 0.5) + i * 0.05, 3) for i in range(560)]  # 18 °C/h, crosses near 600
        for offset in range(0, len(drift), 40):
            client.ingest(readings(machine.id, drift[offset : offset + 40], start=offset))
        [alert] = client.list_alerts(rule_id=rule.id).items
        assert alert.message.startswith("Temperature will pass 90 °C in about ")
        assert alert.predicted_crossing_at is not None and alert.predicted_crossing_at > alert.created_at

        series = client.derived_forecast(machine.id, "temperature", rule_id=rule.id, start=at(400), end=at(560))
        assert isinstance(series, ForecastSeries)
        assert (series.threshold, series.direction, series.horizon_seconds) == (90.0, "above", 3600.0)
        assert series.items and all(isinstance(p, ForecastPoint) for p in series.items)
        latest = series.forecast
        assert latest is not None and latest.timestamp == at(559)
        assert latest.ready and latest.will_cross and latest.crossing_at is not None
        assert at(560) < latest.crossing_at < at(660)
        assert latest.earliest_at is not None and latest.latest_at is not None
        assert latest.earliest_at <= latest.crossing_at <= latest.latest_at
        assert 15.0 < latest.slope_per_hour < 21.0
        # Without a rule: a threshold out of reach within the horizon is not crossed.
        far = client.derived_forecast(
            machine.id, "temperature", condition=">", threshold=500.0, horizon_seconds=600.0, start=at(400), end=at(560)
        )
        assert far.rule_id is None and far.forecast is not None and not far.forecast.will_cross

        edited = client.update_alert_rule(rule.id, horizon_seconds=1800.0, window_readings=64)
        assert (edited.horizon_seconds, edited.window_readings) == (1800.0, 64)
        assert client.update_alert_rule(rule.id, window_readings=None).window_readings is None
        with pytest.raises(ValidationError) as refused:
            client.update_alert_rule(rule.id, sensitivity="high")
        assert "sensitivity: not a parameter of forecast rules" in str(refused.value.detail)
        with pytest.raises(ValidationError):
            client.derived_forecast(machine.id, "temperature", threshold=90.0)  # no condition nor horizon


def test_each_kind_sends_only_its_own_fields_and_derived_queries_drop_what_is_not_given() -> None:
    """The I/O-free requests both clients send: a field another kind takes is never sent, not even as null."""
    anomaly = api.create_alert_rule(
        "Odd", "temperature", "anomaly", {"sensitivity": "high"}, None, "warning", 0.0, 0.1, True, None
    )
    assert (anomaly.method, anomaly.path) == ("POST", "/api/v1/alert-rules")
    assert anomaly.json["kind"] == "anomaly" and anomaly.json["sensitivity"] == "high"
    assert not {"condition", "threshold", "horizon_seconds", "window_readings"} & set(anomaly.json)
    fields = {"condition": ">", "threshold": 90.0, "horizon_seconds": 600.0, "window_readings": None}
    forecast = api.create_alert_rule("Hot", "temperature", "forecast", fields, None, "info", 0.0, 0.0, True, None)
    assert "window_readings" not in forecast.json and forecast.json["horizon_seconds"] == 600.0
    update = api.update_alert_rule("r1", {"window_readings": None, "sensitivity": UNSET})
    assert update.json == {"window_readings": None}  # None resets it; UNSET leaves it out

    derived = api.derived_forecast("m1", "temperature", at(0), None, None, ">", 90.0, 600.0, None)
    params = derived.request_kwargs("token")["params"]
    assert params == {
        "machine_id": "m1",
        "metric_name": "temperature",
        "kind": "forecast",
        "start": "2026-01-05T00:00:00Z",
        "condition": ">",
        "threshold": 90.0,
        "horizon_seconds": 600.0,
    }
    scores = api.derived_anomaly("m1", "temperature", None, None, "r1", None, 50)
    assert scores.request_kwargs(None)["params"] == {
        "machine_id": "m1",
        "metric_name": "temperature",
        "kind": "anomaly",
        "rule_id": "r1",
        "limit": 50,
    }

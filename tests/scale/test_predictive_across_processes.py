"""Predictive rules with several server processes: a process decides on detector state in step with the
database, whichever process saw the series' earlier readings."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection

from haltless.core.timefmt import format_micros
from tests.conftest import next_event
from tests.scale.test_scale_out import REDIS_HOST, REDIS_PORT, Processes, _env, _post, _socket, _tenant

START_US = 1_767_571_200_000_000
PERIOD_US = 10_000_000


def _readings(machine_id: str, values: list[float], start: int) -> list[dict[str, Any]]:
    return [
        {
            "machine_id": machine_id,
            "metric_name": "temperature",
            "value": value,
            "timestamp": format_micros(START_US + (start + i) * PERIOD_US),
        }
        for i, value in enumerate(values)
    ]


async def test_a_process_that_missed_the_earlier_readings_rebuilds_before_deciding(
    tmp_path: Path, pg_url: str, processes: Processes
) -> None:
    env = _env(tmp_path, pg_url, f"redis://{REDIS_HOST}:{REDIS_PORT}/0")
    base_a = processes.start(env)
    base_b = processes.start(env)
    admin, token = await _tenant(base_a, env)
    async with admin:
        machine_id = (await admin.post("/api/v1/machines", json={"name": "Press"})).json()["id"]
        rule = {"name": "odd", "metric_name": "temperature", "kind": "anomaly"}
        assert (await admin.post("/api/v1/alert-rules", json=rule)).status_code == 201
        rng = random.Random(2)
        level_60 = [round(60.0 + rng.gauss(0.0, 0.5), 3) for _ in range(600)]
        level_65 = [round(65.0 + rng.gauss(0.0, 0.5), 3) for _ in range(612)]
        ws = await _socket(base_b, token)
        # A sees the first 600 readings (level 60); B the next 600, where the level moves to 65: B alerts on it.
        for start in range(0, 600, 200):
            batch = _readings(machine_id, level_60[start : start + 200], start)
            assert (await _post(base_a, token, batch)).status_code == 202
        for start in range(600, 1200, 200):
            batch = _readings(machine_id, level_65[start - 600 : start - 400], start)
            assert (await _post(base_b, token, batch)).status_code == 202
        alerted = [e for e in await _until_marker(ws, base_b, token, machine_id, 1) if e["type"] == "alert"]
        assert alerted and alerted[0]["created_at"] == format_micros(START_US + 600 * PERIOD_US)

        # A's own detector saw only level 60: deciding on it, A would call 65 a new level. It must catch up from the
        # database first, where 65 is familiar by now.
        assert (await _post(base_a, token, _readings(machine_id, level_65[600:], 1200))).status_code == 202
        seen = await _until_marker(ws, base_a, token, machine_id, 2)
        assert [e for e in seen if e["type"] == "alert"] == []
        await ws.close()
        alerts = (await admin.get("/api/v1/alerts")).json()["items"]
        assert sorted(a["id"] for a in alerts) == sorted(e["alert_id"] for e in alerted)


async def _until_marker(ws: ClientConnection, base: str, token: str, machine_id: str, value: float) -> list[Any]:
    """The events up to a marker reading (of a metric without rules) posted now: everything caused before."""
    marker = {"machine_id": machine_id, "metric_name": "marker", "value": value}
    assert (await _post(base, token, [marker])).status_code == 202
    seen = []
    while True:
        event = await next_event(ws)
        seen.append(event)
        if event["type"] == "sensor_update" and event["metric_name"] == "marker" and event["value"] == value:
            return seen

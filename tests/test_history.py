"""Sensor history over a real server: raw keyset pages, buckets, max_points, CSV export, fleet latest, retention."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from haltless.admin import create_tenant
from haltless.server.clock import SystemClock
from haltless.store.database import create_engine
from haltless.store.retention import RetentionPruner, prune_readings
from tests.conftest import EVENT_TIMEOUT, PASSWORD, RunningServer, Tenant, login

DAY = "2026-03-02"
T0 = f"{DAY}T10:00:00Z"


def at(clock: str) -> str:
    return f"{DAY}T{clock}Z"


def reading(machine_id: str, metric: str, value: float, timestamp: str, unit: str = "C") -> dict[str, Any]:
    return {"machine_id": machine_id, "metric_name": metric, "value": value, "unit": unit, "timestamp": timestamp}


async def ingest(tenant: Tenant, readings: list[dict[str, Any]]) -> None:
    response = await tenant.ingest(readings)
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == len(readings), response.text


async def history(tenant: Tenant, **params: Any) -> httpx.Response:
    return await tenant.http.get("/api/v1/sensor-data", params=params)


async def known_data(tenant: Tenant) -> str:
    """A machine with hand-checkable readings; ingested out of measurement order on purpose."""
    machine = await tenant.add_machine()
    await ingest(
        tenant,
        [
            reading(machine, "temp", 1.0, at("10:00:05")),
            reading(machine, "temp", 3.0, at("10:00:20")),
            reading(machine, "temp", 2.0, at("10:00:50")),
            reading(machine, "temp", 10.0, at("10:01:00")),
            reading(machine, "temp", 4.0, at("10:03:59.5")),
            reading(machine, "temp", 6.0, at("10:03:10")),
            # Equal timestamps: the later stored one is the bucket's `last`.
            reading(machine, "temp", 7.0, at("10:05:00")),
            reading(machine, "temp", 8.0, at("10:05:00")),
            reading(machine, "vib", 0.5, at("10:00:30"), unit="mm/s"),
            reading(machine, "vib", 1.5, at("10:01:30"), unit="mm/s"),
            # Outside [10:00, 10:06): never counted.
            reading(machine, "temp", 100.0, at("09:59:59.999999")),
            reading(machine, "temp", 100.0, at("10:06:00")),
        ],
    )
    return machine


def bucket(metric: str, timestamp: str, avg: float, low: float, high: float, count: int, last: float) -> dict[str, Any]:
    return {
        "metric_name": metric,
        "timestamp": timestamp,
        "avg": avg,
        "min": low,
        "max": high,
        "count": count,
        "last": last,
    }


async def test_buckets_of_known_data(server: RunningServer, tenant: Tenant) -> None:
    machine = await known_data(tenant)
    response = await history(
        tenant, machine_id=machine, metric_name="temp", start=T0, end=at("10:06:00"), interval="1m"
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["interval"] == "1m"
    assert body["next_cursor"] is None
    assert (body["start"], body["end"]) == (T0, at("10:06:00"))
    assert body["items"] == [
        bucket("temp", at("10:00:00"), 2.0, 1.0, 3.0, 3, 2.0),
        bucket("temp", at("10:01:00"), 10.0, 10.0, 10.0, 1, 10.0),
        bucket("temp", at("10:03:00"), 5.0, 4.0, 6.0, 2, 4.0),
        bucket("temp", at("10:05:00"), 7.5, 7.0, 8.0, 2, 8.0),
    ]


async def test_buckets_align_to_the_epoch_not_to_start(server: RunningServer, tenant: Tenant) -> None:
    machine = await known_data(tenant)
    response = await history(
        tenant, machine_id=machine, metric_name="temp", start=at("10:00:30"), end=at("10:02:00"), interval="1m"
    )
    assert response.json()["items"] == [
        bucket("temp", at("10:00:00"), 2.0, 2.0, 2.0, 1, 2.0),
        bucket("temp", at("10:01:00"), 10.0, 10.0, 10.0, 1, 10.0),
    ]
    hourly = await history(
        tenant, machine_id=machine, metric_name="temp", start=at("09:30:00"), end=at("11:00:00"), interval="1h"
    )
    assert hourly.json()["items"] == [
        bucket("temp", at("09:00:00"), 100.0, 100.0, 100.0, 1, 100.0),
        bucket("temp", at("10:00:00"), 141.0 / 9, 1.0, 100.0, 9, 100.0),
    ]


async def test_max_points_picks_a_nice_interval(server: RunningServer, tenant: Tenant) -> None:
    machine = await known_data(tenant)
    response = await history(tenant, machine_id=machine, metric_name="temp", start=T0, end=at("10:06:00"), max_points=4)
    body = response.json()
    assert body["interval"] == "2m"
    assert body["items"] == [
        bucket("temp", at("10:00:00"), 4.0, 1.0, 10.0, 4, 10.0),
        bucket("temp", at("10:02:00"), 5.0, 4.0, 6.0, 2, 4.0),
        bucket("temp", at("10:04:00"), 7.5, 7.0, 8.0, 2, 8.0),
    ]
    day = await history(
        tenant,
        machine_id=machine,
        metric_name="temp",
        start=f"{DAY}T00:00:00Z",
        end="2026-03-03T00:00:00Z",
        max_points=500,
    )
    assert day.json()["interval"] == "5m"


async def test_several_metrics_carry_their_names(server: RunningServer, tenant: Tenant) -> None:
    machine = await known_data(tenant)
    window = {"machine_id": machine, "start": T0, "end": at("10:02:00")}
    aggregated = await tenant.http.get(
        "/api/v1/sensor-data", params={**window, "metric_name": ["temp", "vib"], "interval": "1m"}
    )
    assert aggregated.json()["metric_names"] == ["temp", "vib"]
    assert aggregated.json()["items"] == [
        bucket("temp", at("10:00:00"), 2.0, 1.0, 3.0, 3, 2.0),
        bucket("vib", at("10:00:00"), 0.5, 0.5, 0.5, 1, 0.5),
        bucket("temp", at("10:01:00"), 10.0, 10.0, 10.0, 1, 10.0),
        bucket("vib", at("10:01:00"), 1.5, 1.5, 1.5, 1, 1.5),
    ]
    raw = await history(tenant, **window, metric_name="vib,temp")
    assert [(p["metric_name"], p["timestamp"], p["value"], p["unit"]) for p in raw.json()["items"]] == [
        ("temp", at("10:00:05"), 1.0, "C"),
        ("temp", at("10:00:20"), 3.0, "C"),
        ("vib", at("10:00:30"), 0.5, "mm/s"),
        ("temp", at("10:00:50"), 2.0, "C"),
        ("temp", at("10:01:00"), 10.0, "C"),
        ("vib", at("10:01:30"), 1.5, "mm/s"),
    ]


async def _page_all(tenant: Tenant, params: dict[str, Any], during: Callable[[int], Any] | None = None) -> list[Any]:
    seen: list[Any] = []
    cursor: str | None = None
    page_number = 0
    while True:
        response = await tenant.http.get(
            "/api/v1/sensor-data", params={**params, **({"cursor": cursor} if cursor else {})}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["items"]) <= params["limit"]
        seen += [(p["metric_name"], p["timestamp"], p["value"]) for p in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return seen
        if during is not None:
            await during(page_number)
        page_number += 1


async def test_raw_pages_lose_and_repeat_nothing_while_readings_arrive(server: RunningServer, tenant: Tenant) -> None:
    machine = await tenant.add_machine()
    batch = []
    for i in range(300):
        # Every third reading shares its timestamp with the one before: ties are broken by id.
        second = i - (i % 3 == 2)
        stamp = f"{DAY}T10:{second // 60:02d}:{second % 60:02d}Z"
        batch.append(reading(machine, "temp" if i % 2 else "vib", float(i), stamp))
    await ingest(tenant, batch)
    params = {"machine_id": machine, "metric_name": ["temp", "vib"], "start": T0, "end": at("10:10:00"), "limit": 37}

    async def arrive(page_number: int) -> None:
        # Late readings inside the window, before and after the cursor, and right on a shared timestamp.
        await ingest(
            tenant,
            [
                reading(machine, "temp", 1000.0 + page_number, at("10:00:00")),
                reading(machine, "vib", 2000.0 + page_number, at("10:04:59")),
                reading(machine, "temp", 3000.0 + page_number, at("10:02:00")),
            ],
        )

    paged = await _page_all(tenant, params, during=arrive)
    expected = sorted(((r["metric_name"], r["timestamp"], r["value"]) for r in batch), key=lambda p: (p[1], p[2]))
    assert paged == expected
    # A new query sees the late arrivals too, still each exactly once.
    again = await _page_all(tenant, {**params, "limit": 1000})
    assert len(again) == len(set(again)) == 300 + 3 * 8


async def test_first_page_and_limits(server: RunningServer, tenant: Tenant) -> None:
    machine = await known_data(tenant)
    first = await history(tenant, machine_id=machine, metric_name="temp", start=T0, end=at("10:06:00"), limit=3)
    body = first.json()
    assert [p["value"] for p in body["items"]] == [1.0, 3.0, 2.0]
    assert body["interval"] is None
    second = await history(tenant, machine_id=machine, metric_name="temp", limit=3, cursor=body["next_cursor"])
    assert [p["value"] for p in second.json()["items"]] == [10.0, 6.0, 4.0]
    third = await history(tenant, machine_id=machine, metric_name="temp", limit=3, cursor=second.json()["next_cursor"])
    assert [p["value"] for p in third.json()["items"]] == [7.0, 8.0]
    assert third.json()["next_cursor"] is None


async def test_default_window_is_the_last_hour(server: RunningServer, tenant: Tenant) -> None:
    machine = await tenant.add_machine()
    await ingest(tenant, [{"machine_id": machine, "metric_name": "temp", "value": 1.5}])
    response = await history(tenant, machine_id=machine, metric_name="temp")
    assert [p["value"] for p in response.json()["items"]] == [1.5]


def _csv(response: httpx.Response) -> list[list[str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"].startswith("attachment;")
    return list(csv.reader(io.StringIO(response.text)))


async def test_csv_export_raw_and_bucketed(server: RunningServer, tenant: Tenant) -> None:
    machine = await known_data(tenant)
    window = {"machine_id": machine, "start": T0, "end": at("10:02:00")}
    raw = _csv(await tenant.http.get("/api/v1/sensor-data/export", params={**window, "metric_name": "temp,vib"}))
    assert raw == [
        ["timestamp", "machine_id", "metric_name", "value", "unit"],
        [at("10:00:05"), machine, "temp", "1.0", "C"],
        [at("10:00:20"), machine, "temp", "3.0", "C"],
        [at("10:00:30"), machine, "vib", "0.5", "mm/s"],
        [at("10:00:50"), machine, "temp", "2.0", "C"],
        [at("10:01:00"), machine, "temp", "10.0", "C"],
        [at("10:01:30"), machine, "vib", "1.5", "mm/s"],
    ]
    bucketed = _csv(
        await tenant.http.get("/api/v1/sensor-data/export", params={**window, "metric_name": "temp", "interval": "1m"})
    )
    assert bucketed == [
        ["timestamp", "machine_id", "metric_name", "avg", "min", "max", "count", "last"],
        [at("10:00:00"), machine, "temp", "2.0", "1.0", "3.0", "3", "2.0"],
        [at("10:01:00"), machine, "temp", "10.0", "10.0", "10.0", "1", "10.0"],
    ]


async def test_csv_export_pages_through_long_ranges(server: RunningServer, tenant: Tenant) -> None:
    machine = await tenant.add_machine()
    total = 12_000  # more than two export pages
    for offset in range(0, total, 6000):
        await ingest(
            tenant,
            [
                reading(
                    machine,
                    "temp",
                    float(i),
                    f"2026-03-0{2 + i // 86_400}T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z",
                )
                for i in range(offset, offset + 6000)
            ],
        )
    params = {"machine_id": machine, "metric_name": "temp", "start": f"{DAY}T00:00:00Z", "end": "2026-03-03T00:00:00Z"}
    rows = _csv(await tenant.http.get("/api/v1/sensor-data/export", params=params))
    assert [float(row[3]) for row in rows[1:]] == [float(i) for i in range(total)]
    minutes = _csv(await tenant.http.get("/api/v1/sensor-data/export", params={**params, "interval": "1s"}))
    assert len(minutes) == 1 + total


async def test_fleet_latest_values(server: RunningServer, tenant: Tenant) -> None:
    press = await tenant.add_machine("A press")
    lathe = await tenant.add_machine("B lathe")
    idle = await tenant.add_machine("C idle")
    await ingest(
        tenant,
        [
            reading(press, "temp", 2.0, at("10:00:02")),
            reading(press, "temp", 1.0, at("10:00:01")),
            reading(press, "amps", 9.0, at("09:00:00"), unit="A"),
            reading(lathe, "temp", 5.0, at("10:00:00")),
            reading(lathe, "temp", 6.0, at("10:00:00")),
        ],
    )
    plain = (await tenant.http.get("/api/v1/machines")).json()
    assert all("latest" not in item for item in plain["items"])
    listing = await tenant.http.get("/api/v1/machines", params={"include": "latest"})
    assert listing.status_code == 200, listing.text
    latest = {
        item["id"]: [(r["metric_name"], r["value"], r["unit"], r["timestamp"]) for r in item["latest"]]
        for item in listing.json()["items"]
    }
    assert latest == {
        press: [("amps", 9.0, "A", at("09:00:00")), ("temp", 2.0, "C", at("10:00:02"))],
        lathe: [("temp", 6.0, "C", at("10:00:00"))],
        idle: [],
    }
    bad = await tenant.http.get("/api/v1/machines", params={"include": "everything"})
    assert bad.status_code == 422
    assert "everything" in bad.json()["detail"]


async def test_other_tenants_history_is_404(server: RunningServer, tenant_factory: Any) -> None:
    a: Tenant = await tenant_factory()
    b: Tenant = await tenant_factory()
    foreign = await known_data(b)
    for path in ("/api/v1/sensor-data", "/api/v1/sensor-data/export"):
        for machine_id in (foreign, str(uuid.uuid4()), "not-a-uuid"):
            response = await a.http.get(
                path, params={"machine_id": machine_id, "metric_name": "temp", "start": T0, "end": at("10:06:00")}
            )
            assert response.status_code == 404, (path, machine_id)
            assert response.json() == {"detail": "machine not found"}
    mine = await history(b, machine_id=foreign, metric_name="temp", start=T0, end=at("10:06:00"))
    assert len(mine.json()["items"]) == 8


async def test_viewers_read_history(server: RunningServer, tenant: Tenant) -> None:
    machine = await known_data(tenant)
    viewer = await tenant.add_user("viewer")
    response = await tenant.http.get(
        "/api/v1/sensor-data",
        params={"machine_id": machine, "metric_name": "vib", "start": T0, "end": at("10:06:00")},
        headers={"Authorization": f"Bearer {viewer['access_token']}"},
    )
    assert [p["value"] for p in response.json()["items"]] == [0.5, 1.5]


async def test_bad_queries_are_422_with_a_reason(server: RunningServer, tenant: Tenant) -> None:
    machine = await known_data(tenant)
    base = {"machine_id": machine, "metric_name": "temp", "start": T0, "end": at("10:06:00")}
    page = (await history(tenant, **base, limit=2)).json()
    cases: list[tuple[dict[str, Any], str]] = [
        ({"end": at("09:00:00")}, "end must be after start"),
        ({"interval": "5w"}, "unknown unit 'w'"),
        ({"interval": "often"}, "interval"),
        ({"start": "2026-01-01T00:00:00Z", "end": "2026-03-01T00:00:00Z"}, "range too long for raw points"),
        ({"start": "2024-01-01T00:00:00Z", "end": "2026-03-01T00:00:00Z", "interval": "1d"}, "range too long"),
        ({"start": "2026-01-01T00:00:00Z", "end": "2026-03-01T00:00:00Z", "interval": "10s"}, "at most 10000"),
        ({"cursor": "bogus"}, "invalid cursor"),
        ({"cursor": page["next_cursor"], "metric_name": "vib"}, "different query"),
        ({"cursor": page["next_cursor"], "end": at("10:07:00")}, "differ from the cursor"),
        ({"interval": "1m", "max_points": 500}, "either interval or max_points"),
        ({"max_points": 0}, "max_points"),
        ({"max_points": 10_001}, "max_points"),
        ({"limit": 0}, "limit"),
        ({"limit": 10_001}, "limit"),
        ({"metric_name": ""}, "metric_name is required"),
        ({"start": "2026-03-02T10:00:00"}, "no time zone"),
        ({"end": "tomorrow"}, "ISO 8601"),
    ]
    for overrides, fragment in cases:
        response = await history(tenant, **{**base, **overrides})
        assert response.status_code == 422, (overrides, response.text)
        assert fragment in response.json()["detail"], (overrides, response.json())
    missing = await tenant.http.get("/api/v1/sensor-data", params={"metric_name": "temp"})
    assert missing.status_code == 422
    assert "machine_id" in missing.json()["detail"]
    export = await tenant.http.get("/api/v1/sensor-data/export", params={**base, "interval": "1fortnight"})
    assert export.status_code == 422
    assert "unknown unit" in export.json()["detail"]


async def test_pruner_deletes_old_readings_in_batches(server: RunningServer, tenant: Tenant) -> None:
    machine = await tenant.add_machine()
    old = [reading(machine, "temp", float(i), f"2020-01-01T00:00:{i:02d}Z") for i in range(7)]
    await ingest(tenant, [*old, {"machine_id": machine, "metric_name": "temp", "value": 42.0}])
    engine = create_engine(server.settings.effective_database_url)
    try:
        assert await prune_readings(engine, older_than_us=1_600_000_000_000_000, batch_rows=2, pause=0) == 7
        assert await RetentionPruner(engine, SystemClock(), retention_days=1).prune_now() == 0
    finally:
        await engine.dispose()
    gone = await history(
        tenant, machine_id=machine, metric_name="temp", start="2020-01-01T00:00:00Z", end="2020-01-02T00:00:00Z"
    )
    assert gone.json()["items"] == []
    kept = await history(tenant, machine_id=machine, metric_name="temp")
    assert [p["value"] for p in kept.json()["items"]] == [42.0]


async def test_server_with_retention_prunes_in_the_background(server_factory: Callable[..., RunningServer]) -> None:
    secret = "retention-test-secret-" + uuid.uuid4().hex
    first = server_factory(jwt_secret=secret)
    email = f"admin-{uuid.uuid4().hex[:8]}@example.com"
    await create_tenant(first.settings, name="Plant", email=email, password=PASSWORD)
    token = (await login(first.base_url, email))["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=first.base_url, headers=headers, timeout=EVENT_TIMEOUT) as http:
        machine = (await http.post("/api/v1/machines", json={"name": "Press"})).json()["id"]
        sent = await http.post(
            "/api/v1/sensor-data",
            json={
                "readings": [
                    reading(machine, "temp", 1.0, "2020-01-01T00:00:00Z"),
                    {"machine_id": machine, "metric_name": "temp", "value": 2.0},
                ]
            },
        )
        assert sent.json()["accepted"] == 2
    first.stop()
    second = server_factory(jwt_secret=secret, retention_days=1)
    old = {"machine_id": machine, "metric_name": "temp", "start": "2020-01-01T00:00:00Z", "end": "2020-01-02T00:00:00Z"}
    async with httpx.AsyncClient(base_url=second.base_url, headers=headers, timeout=EVENT_TIMEOUT) as http:
        async with asyncio.timeout(EVENT_TIMEOUT):
            while (await http.get("/api/v1/sensor-data", params=old)).json()["items"] != []:
                await asyncio.sleep(0.05)  # the pruner runs in the background at start-up: wait until it has
        recent = await http.get("/api/v1/sensor-data", params={"machine_id": machine, "metric_name": "temp"})
        assert [p["value"] for p in recent.json()["items"]] == [2.0]

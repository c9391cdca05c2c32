"""`POST /api/v1/sensor-data`: per-item validation, idempotency, limits, tenant isolation."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson

from tests.conftest import EVENT_TIMEOUT, RunningServer, Tenant, query_database, wait_until

# What every client sends with a body (the server answers 415 to anything else).
JSON = {"Content-Type": "application/json"}


async def _latest(tenant: Tenant, machine_id: str) -> list[dict[str, Any]]:
    response = await tenant.http.get(f"/api/v1/machines/{machine_id}/latest")
    assert response.status_code == 200
    readings: list[dict[str, Any]] = response.json()["readings"]
    return readings


async def test_accepts_valid_batch_and_stores_latest(server: RunningServer, tenant: Tenant) -> None:
    machine_id = await tenant.add_machine()
    response = await tenant.ingest(
        [
            {
                "machine_id": machine_id,
                "metric_name": "temperature",
                "value": 70,
                "unit": "celsius",
                "timestamp": "2026-04-04T10:30:05Z",
            },
            {
                "machine_id": machine_id,
                "metric_name": "temperature",
                "value": 73.2,
                "unit": "celsius",
                "timestamp": "2026-04-04T10:30:06.5+00:00",
            },
            {"machine_id": machine_id, "metric_name": "vibration", "value": 2.5},
        ]
    )
    assert response.status_code == 202
    assert response.json() == {"accepted": 3, "duplicates": 0, "rejected": []}
    latest = {r["metric_name"]: r for r in await _latest(tenant, machine_id)}
    assert latest["temperature"]["value"] == 73.2
    assert latest["temperature"]["timestamp"] == "2026-04-04T10:30:06.5Z"
    assert latest["temperature"]["unit"] == "celsius"
    assert latest["vibration"]["unit"] == ""
    machine = (await tenant.http.get(f"/api/v1/machines/{machine_id}")).json()
    assert machine["last_seen_at"] is not None


async def test_bad_items_are_rejected_individually(server: RunningServer, tenant: Tenant) -> None:
    machine_id = await tenant.add_machine()
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    good = {"machine_id": machine_id, "metric_name": "temperature", "value": 1.0}
    items: list[Any] = [
        good,
        {**good, "machine_id": str(uuid.uuid4())},
        {**good, "machine_id": "not-a-uuid"},
        {**good, "value": "hot"},
        {**good, "value": True},
        {**good, "value": None},
        {**good, "metric_name": ""},
        {**good, "metric_name": "temp erature"},
        {**good, "timestamp": future},
        {**good, "timestamp": "2026-04-04T10:30:05"},
        {**good, "timestamp": "yesterday"},
        {**good, "timestamp": 1712226605},
        {**good, "unit": 5},
        {**good, "reading_id": 17},
        {**good, "extra": 1},
        "just a string",
    ]
    response = await tenant.ingest(items)
    assert response.status_code == 202
    body = response.json()
    assert body["accepted"] == 1
    rejected = {r["index"]: r["detail"] for r in body["rejected"]}
    assert sorted(rejected) == list(range(1, len(items)))
    assert rejected[1] == "unknown machine_id"
    assert "UUID" in rejected[2]
    assert "number" in rejected[3] and "number" in rejected[4] and "number" in rejected[5]
    assert "metric_name" in rejected[6] and "metric_name" in rejected[7]
    assert "future" in rejected[8]
    assert "time zone" in rejected[9]
    assert "ISO 8601" in rejected[10] and "ISO 8601" in rejected[11]
    assert "unit" in rejected[12]
    assert "reading_id" in rejected[13]
    assert "extra" in rejected[14]
    assert "object" in rejected[15]
    assert len(await _latest(tenant, machine_id)) == 1


async def test_nan_and_infinity_are_rejected_per_item(server: RunningServer, tenant: Tenant) -> None:
    machine_id = await tenant.add_machine()
    # Python's json module writes NaN/Infinity literals; a client using it must get per-item answers.
    body = json.dumps(
        {
            "readings": [
                {"machine_id": machine_id, "metric_name": "t", "value": float("nan")},
                {"machine_id": machine_id, "metric_name": "t", "value": float("inf")},
                {"machine_id": machine_id, "metric_name": "t", "value": 1e400},
                {"machine_id": machine_id, "metric_name": "t", "value": 10**400},  # an integer no float holds
                {"machine_id": machine_id, "metric_name": "t", "value": 4.0},
            ]
        }
    )
    response = await tenant.http.post("/api/v1/sensor-data", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 202
    result = response.json()
    assert result["accepted"] == 1
    assert [r["index"] for r in result["rejected"]] == [0, 1, 2, 3]
    assert all("finite" in r["detail"] for r in result["rejected"])


async def test_reading_id_makes_retries_idempotent(server: RunningServer, tenant: Tenant) -> None:
    machine_id = await tenant.add_machine()
    batch = [
        {"machine_id": machine_id, "metric_name": "t", "value": float(i), "reading_id": f"r-{i}"} for i in range(5)
    ]
    first = await tenant.ingest(batch)
    assert first.json() == {"accepted": 5, "duplicates": 0, "rejected": []}
    again = await tenant.ingest([*batch, {**batch[0], "reading_id": "r-new"}, {**batch[0], "reading_id": "r-new"}])
    assert again.json() == {"accepted": 1, "duplicates": 6, "rejected": []}


async def test_reading_ids_are_scoped_per_tenant(server: RunningServer, tenant_factory: Any) -> None:
    a: Tenant = await tenant_factory()
    b: Tenant = await tenant_factory()
    ma, mb = await a.add_machine(), await b.add_machine()
    ra = await a.ingest([{"machine_id": ma, "metric_name": "t", "value": 1, "reading_id": "same"}])
    rb = await b.ingest([{"machine_id": mb, "metric_name": "t", "value": 1, "reading_id": "same"}])
    assert ra.json()["accepted"] == rb.json()["accepted"] == 1


async def test_reading_ids_are_scoped_per_machine(server: RunningServer, tenant: Tenant) -> None:
    """Two machines numbering their readings alike ("0001") both store them, in one batch or in two; the same
    machine sending its id again is a duplicate."""
    press, pump, lathe = await tenant.add_machine(), await tenant.add_machine(), await tenant.add_machine()
    first = await tenant.ingest([{"machine_id": press, "metric_name": "t", "value": 1, "reading_id": "0001"}])
    assert first.json() == {"accepted": 1, "duplicates": 0, "rejected": []}
    both = await tenant.ingest(
        [
            {"machine_id": pump, "metric_name": "t", "value": 2, "reading_id": "0001"},
            {"machine_id": lathe, "metric_name": "t", "value": 3, "reading_id": "0001"},
            {"machine_id": press, "metric_name": "t", "value": 1, "reading_id": "0001"},
        ]
    )
    assert both.json() == {"accepted": 2, "duplicates": 1, "rejected": []}
    for machine_id, value in [(press, 1), (pump, 2), (lathe, 3)]:
        assert [r["value"] for r in await _latest(tenant, machine_id)] == [value]


async def test_one_unit_per_machine_and_metric(server: RunningServer, tenant: Tenant) -> None:
    """The first unit a machine reports for a metric is its unit: a reading in another unit is rejected (that
    item only, with the reason); a reading with no unit takes the metric's; another machine may use another."""
    press, pump = await tenant.add_machine(), await tenant.add_machine()
    first = await tenant.ingest([{"machine_id": press, "metric_name": "vibration", "value": 1, "unit": "mm/s"}])
    assert first.json() == {"accepted": 1, "duplicates": 0, "rejected": []}
    mixed = await tenant.ingest(
        [
            {"machine_id": press, "metric_name": "vibration", "value": 2, "unit": "mm/s"},
            {"machine_id": press, "metric_name": "vibration", "value": 3, "unit": "mm_per_s"},
            {"machine_id": pump, "metric_name": "vibration", "value": 4, "unit": "in/s"},
            {"machine_id": pump, "metric_name": "vibration", "value": 5, "unit": "mm/s"},
            {"machine_id": press, "metric_name": "vibration", "value": 6},
        ]
    )
    assert mixed.status_code == 202
    assert mixed.json() == {
        "accepted": 3,
        "duplicates": 0,
        "rejected": [
            {
                "index": 1,
                "detail": 'unit "mm_per_s" differs from "mm/s", the unit of vibration on this machine;'
                " convert the value or use another metric name",
            },
            {
                "index": 3,
                "detail": 'unit "mm/s" differs from "in/s", the unit of vibration on this machine;'
                " convert the value or use another metric name",
            },
        ],
    }
    assert [(r["value"], r["unit"]) for r in await _latest(tenant, press)] == [(6, "mm/s")]
    assert [(r["value"], r["unit"]) for r in await _latest(tenant, pump)] == [(4, "in/s")]
    # Still refused in a later batch, after the unit is remembered.
    later = await tenant.ingest([{"machine_id": press, "metric_name": "vibration", "value": 7, "unit": "mm_per_s"}])
    assert later.json()["accepted"] == 0
    assert later.json()["rejected"][0]["index"] == 0


async def test_another_tenants_machine_is_unknown(server: RunningServer, tenant_factory: Any) -> None:
    a: Tenant = await tenant_factory()
    b: Tenant = await tenant_factory()
    foreign = await b.add_machine()
    response = await a.ingest([{"machine_id": foreign, "metric_name": "t", "value": 1}])
    assert response.json()["rejected"] == [{"index": 0, "detail": "unknown machine_id"}]
    assert await _latest(b, foreign) == []


async def test_a_machine_deleted_behind_the_servers_back_is_unknown(server: RunningServer, tenant: Tenant) -> None:
    # The server checks machine ids against what it holds in memory; a machine removed by someone else (another
    # process, an operator's SQL) is still there. The database refuses the batch, and the retry asks it instead.
    gone = await tenant.add_machine()
    kept = await tenant.add_machine()
    query_database(server.settings, f"DELETE FROM machines WHERE id = '{gone}'")
    response = await tenant.ingest(
        [{"machine_id": kept, "metric_name": "t", "value": 1}, {"machine_id": gone, "metric_name": "t", "value": 2}]
    )
    assert response.status_code == 202, response.text
    assert response.json() == {
        "accepted": 1,
        "duplicates": 0,
        "rejected": [{"index": 1, "detail": "unknown machine_id"}],
    }
    assert [r["value"] for r in await _latest(tenant, kept)] == [1.0]


async def test_too_many_readings_is_413_and_stores_nothing(server: RunningServer, tenant: Tenant) -> None:
    machine_id = await tenant.add_machine()
    batch = [{"machine_id": machine_id, "metric_name": "t", "value": 1.0}] * 10_001
    response = await tenant.ingest(batch)
    assert response.status_code == 413
    assert "10000" in response.json()["detail"]
    assert await _latest(tenant, machine_id) == []
    exactly = await tenant.ingest(batch[:10_000])
    assert exactly.json()["accepted"] == 10_000


async def test_body_over_8_mib_is_413(server: RunningServer, tenant: Tenant) -> None:
    machine_id = await tenant.add_machine()
    padding = "x" * (8 * 1024 * 1024)
    body = orjson.dumps({"readings": [{"machine_id": machine_id, "metric_name": "t", "value": 1, "unit": padding}]})
    response = await tenant.http.post("/api/v1/sensor-data", content=body, headers=JSON)
    assert response.status_code == 413
    assert "MiB" in response.json()["detail"]

    async def chunks() -> Any:
        # No Content-Length: the limit must hold on the streamed body too.
        for _ in range(9):
            yield b" " * (1024 * 1024)

    streamed = await tenant.http.post("/api/v1/sensor-data", content=chunks(), headers=JSON)
    assert streamed.status_code == 413
    assert await _latest(tenant, machine_id) == []


async def test_malformed_bodies_are_422(server: RunningServer, tenant: Tenant) -> None:
    for body in (b"{not json", b"[]", b'{"readings": {}}', b'{"readings": [], "more": 1}', b"null"):
        response = await tenant.http.post("/api/v1/sensor-data", content=body, headers=JSON)
        assert response.status_code == 422, body
        assert response.json()["detail"], body


async def test_ingest_requires_credentials(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=EVENT_TIMEOUT) as http:
        response = await http.post("/api/v1/sensor-data", json={"readings": []})
    assert response.status_code == 401


async def test_sqlite_log_is_checkpointed_in_the_background_after_ingest(server: RunningServer, tenant: Tenant) -> None:
    # Ingest commits never run SQLite's checkpoint themselves (store/checkpoint.py); the server's task does.
    checkpointer = server.state.checkpointer
    machine_id = await tenant.add_machine()
    items = [{"machine_id": machine_id, "metric_name": "temperature", "value": float(i)} for i in range(500)]
    assert (await tenant.ingest(items)).status_code == 202
    if server.settings.database_url is not None:
        assert not checkpointer.enabled
        return
    # The checkpointer lives on the server's loop (another thread): watch it until it has caught up.
    await wait_until(lambda: checkpointer.caught_up and checkpointer.stats.runs > 0, "a checkpoint after the batch")
    assert checkpointer.stats.failures == 0


async def _ingest_outcomes(
    running: RunningServer, tenant: Tenant, headers: dict[str, str]
) -> list[tuple[int, Any, str | None]]:
    """Status and body of the same requests, good and bad, sent with `headers`."""
    machine_id = await tenant.add_machine(f"Press {uuid.uuid4().hex[:6]}")
    viewer = await tenant.add_user("viewer")
    good = {"readings": [{"machine_id": machine_id, "metric_name": "t", "value": 1.0, "reading_id": "same-one"}]}
    bad_item = {"readings": [{"machine_id": machine_id, "metric_name": "t", "value": "hot"}]}
    sent: list[tuple[dict[str, str], bytes]] = [
        ({}, orjson.dumps(good)),
        ({}, orjson.dumps(good)),  # a duplicate now
        ({}, orjson.dumps(bad_item)),
        ({}, b"{not json"),
        ({}, b'{"readings": [], "colour": 1}'),
        ({"Authorization": "Bearer nope"}, orjson.dumps(good)),
        ({"Authorization": f"Bearer {viewer['access_token']}"}, orjson.dumps(good)),
        ({}, orjson.dumps({"readings": [good["readings"][0]] * 10_001})),
    ]
    outcomes = []
    async with httpx.AsyncClient(base_url=running.base_url, headers=tenant.http.headers, timeout=EVENT_TIMEOUT) as http:
        for extra, body in sent:
            response = await http.post("/api/v1/sensor-data", content=body, headers={**JSON, **headers, **extra})
            outcomes.append((response.status_code, response.json(), response.headers.get("www-authenticate")))
    return outcomes


async def test_fast_path_and_cors_path_answer_alike(server_factory: Any, tenant_factory: Any) -> None:
    # Without CORS, ingestion skips FastAPI's stack (HaltlessAPI); with it, the route runs behind the CORS
    # middleware. Both must give the same answers, and only the second adds CORS headers.
    plain = server_factory()
    fast = await _ingest_outcomes(plain, await tenant_factory(plain), {})
    cors = server_factory(allowed_origins="https://dash.example.com")
    cors_tenant = await tenant_factory(cors)
    routed = await _ingest_outcomes(cors, cors_tenant, {"Origin": "https://dash.example.com"})
    assert fast == routed
    assert [status for status, _, _ in fast] == [202, 202, 202, 422, 422, 401, 403, 413]
    assert fast[1][1] == {"accepted": 0, "duplicates": 1, "rejected": []}
    assert fast[5][2] == "Bearer"
    machine_id = await cors_tenant.add_machine()
    response = await cors_tenant.http.post(
        "/api/v1/sensor-data",
        json={"readings": [{"machine_id": machine_id, "metric_name": "t", "value": 1.0}]},
        headers={"Origin": "https://dash.example.com"},
    )
    assert response.status_code == 202
    assert response.headers["access-control-allow-origin"] == "https://dash.example.com"

"""Query parameters at the edges a viewer can reach: the ends of time, huge offsets.

Each is a clear 422 or a correct answer, never a 500, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from tests.conftest import RunningServer, Tenant


async def test_windows_at_the_ends_of_time_are_answered(server: RunningServer, tenant: Tenant) -> None:
    """A default end (start + 1h) past year 9999, or start (end - 1h) before year 1, stops at the last instant."""
    machine = await tenant.add_machine()
    base = {"machine_id": machine, "metric_name": "temp"}
    cases: list[tuple[dict[str, str], tuple[str, str]]] = [
        ({"start": "9999-12-31T23:30:00Z"}, ("9999-12-31T23:30:00Z", "9999-12-31T23:59:59.999999Z")),
        ({"end": "0001-01-01T00:30:00Z"}, ("0001-01-01T00:00:00Z", "0001-01-01T00:30:00Z")),
        ({"end": "0001-01-01T00:30:00Z", "interval": "1m"}, ("0001-01-01T00:00:00Z", "0001-01-01T00:30:00Z")),
        (
            {"start": "9999-12-31T23:30:00Z", "max_points": "10"},
            ("9999-12-31T23:30:00Z", "9999-12-31T23:59:59.999999Z"),
        ),
        (
            {"start": "0999-06-01T00:00:00Z", "end": "0999-06-01T00:10:00Z"},
            ("0999-06-01T00:00:00Z", "0999-06-01T00:10:00Z"),
        ),
    ]
    for params, (start, end) in cases:
        response = await tenant.http.get("/api/v1/sensor-data", params={**base, **params})
        assert response.status_code == 200, (params, response.text)
        assert (response.json()["start"], response.json()["end"], response.json()["items"]) == (start, end, [])
        export = await tenant.http.get("/api/v1/sensor-data/export", params={**base, **params})
        assert export.status_code == 200, (params, export.text)
        assert export.text.count("\r\n") == 1  # the header row
        assert "filename=" in export.headers["content-disposition"]
    for params in ({"end": "0001-01-01T00:00:00Z"}, {"start": "9999-12-31T23:59:59.999999Z"}):
        response = await tenant.http.get("/api/v1/sensor-data", params={**base, **params})
        assert response.status_code == 422
        assert response.json()["detail"] == "end must be after start"
    beyond = await tenant.http.get("/api/v1/sensor-data", params={**base, "end": "0001-01-01T00:30:00+01:00"})
    assert beyond.status_code == 422
    assert "out of range" in beyond.json()["detail"]


async def test_machine_list_offsets_beyond_any_fleet_are_422(server: RunningServer, tenant: Tenant) -> None:
    await tenant.add_machine()
    for offset in ("9223372036854775808", "614198610426563002368", "1000000001", "-1"):
        response = await tenant.http.get("/api/v1/machines", params={"offset": offset})
        assert response.status_code == 422, (offset, response.text)
        assert response.json()["detail"].startswith("offset:")
    past_the_end = await tenant.http.get("/api/v1/machines", params={"offset": 1_000_000_000, "include": "latest"})
    assert past_the_end.status_code == 200
    assert (past_the_end.json()["items"], past_the_end.json()["total"]) == ([], 1)

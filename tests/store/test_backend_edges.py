"""Behaviour that SQLite and PostgreSQL could disagree on, pinned over a real server on each backend."""

from __future__ import annotations

from tests.conftest import Tenant


async def test_alert_message_longer_than_its_column_is_shortened_not_refused(tenant: Tenant) -> None:
    """A 500-character template can render far longer; PostgreSQL enforces VARCHAR(500) where SQLite would not."""
    machine_id = await tenant.add_machine()
    name = "R" * 200
    template = "{rule_name} " * 41
    created = await tenant.http.post(
        "/api/v1/alert-rules",
        json={
            "name": name,
            "metric_name": "temp",
            "condition": ">",
            "threshold": 1.0,
            "severity": "warning",
            "message": template,
        },
    )
    assert created.status_code == 201, created.text
    sent = await tenant.ingest([{"machine_id": machine_id, "metric_name": "temp", "value": 5.0}])
    assert sent.status_code == 202, sent.text
    alerts = (await tenant.http.get("/api/v1/alerts")).json()["items"]
    assert len(alerts) == 1
    assert len(alerts[0]["message"]) == 500
    assert alerts[0]["message"].startswith(name)


async def test_machine_tags_and_text_round_trip_unchanged(tenant: Tenant) -> None:
    created = await tenant.http.post(
        "/api/v1/machines", json={"name": "Presse Süd 🛠", "location": "Halle 3", "tags": ["zone:ä", "line-1"]}
    )
    assert created.status_code == 201, created.text
    machine = (await tenant.http.get(f"/api/v1/machines/{created.json()['id']}")).json()
    assert (machine["name"], machine["location"], machine["tags"]) == ("Presse Süd 🛠", "Halle 3", ["zone:ä", "line-1"])
    updated = await tenant.http.patch(f"/api/v1/machines/{machine['id']}", json={"tags": []})
    assert updated.status_code == 200, updated.text
    assert updated.json()["tags"] == []


async def test_nul_characters_are_rejected_per_item(tenant: Tenant) -> None:
    """PostgreSQL text cannot hold NUL; such an item is refused alone instead of failing its batch."""
    machine_id = await tenant.add_machine()
    good = {"machine_id": machine_id, "metric_name": "temp", "value": 1.0}
    sent = await tenant.ingest(
        [good, {**good, "unit": "a\u0000b"}, {**good, "reading_id": "r\u00001"}, {**good, "reading_id": "r-2"}]
    )
    assert sent.status_code == 202, sent.text
    body = sent.json()
    assert body["accepted"] == 2
    assert [(r["index"], "NUL" in r["detail"]) for r in body["rejected"]] == [(1, True), (2, True)]

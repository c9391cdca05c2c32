"""Text no database can store (lone surrogates, NUL) or nobody means (control characters) is refused where it
arrives, with a reason: the item of an ingest batch that holds it, or the request that names it. Never a 500,
never a whole batch lost, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.conftest import RunningServer, Tenant, query_database

ORIGIN = "https://dash.example.com"


def escaped(payload: object) -> bytes:
    """JSON as a client may send it: `\\uXXXX` escapes, which can spell lone surrogates ("\\ud800")."""
    return json.dumps(payload, ensure_ascii=True).encode()


def _reading(machine_id: str, **fields: Any) -> dict[str, Any]:
    return {"machine_id": machine_id, "metric_name": "temp", "value": 1.0, **fields}


async def _post_batch(
    running: RunningServer, tenant: Tenant, readings: list[dict[str, Any]], cors: bool
) -> httpx.Response:
    headers = {"Content-Type": "application/json", **({"Origin": ORIGIN} if cors else {})}
    return await tenant.http.post("/api/v1/sensor-data", content=escaped({"readings": readings}), headers=headers)


async def _check_only_bad_items_are_rejected(running: RunningServer, tenant: Tenant, cors: bool) -> None:
    machine = await tenant.add_machine()
    readings = [
        _reading(machine, value=1.0, reading_id="good-1"),
        _reading(machine, unit="\ud800"),
        _reading(machine, reading_id="\ud800"),
        _reading(machine, reading_id="r-\udc00"),
        _reading(machine, unit="°C\x00"),
        _reading(machine, unit="\x01"),
        _reading(machine, reading_id="tab\tbed"),
        _reading(machine, metric_name="t\ud800"),
        _reading(machine, metric_name="temp\n"),
        _reading(machine[:-1] + "\ud800"),
        _reading(machine, timestamp="2026-01-05T10:00:00Z\ud800"),
        {**_reading(machine), "\ud800": 1},
        _reading(machine, value=2.0, unit="\xa0°C", reading_id="good-2"),
    ]
    response = await _post_batch(running, tenant, readings, cors)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["accepted"] == 2, body
    details = {r["index"]: r["detail"] for r in body["rejected"]}
    assert sorted(details) == list(range(1, 12))
    assert "unit must not contain a lone UTF-16 surrogate (U+D800)" in details[1]
    assert "reading_id must not contain a lone UTF-16 surrogate (U+D800)" in details[2]
    assert "surrogate (U+DC00)" in details[3]
    assert details[4] == "unit must not contain the NUL character"
    assert details[5] == "unit must not contain control characters (U+0001)"
    assert details[6] == "reading_id must not contain control characters (U+0009)"
    assert details[7].startswith("metric_name must be at most 64 characters of letters, digits")
    assert details[8].startswith("metric_name must be")
    assert "machine_id" in details[9]
    assert details[10].startswith("timestamp:")
    assert details[11] == "unknown field(s): '\\ud800'"
    stored = query_database(running.settings, "SELECT reading_id, unit FROM readings ORDER BY value")
    assert stored == [("good-1", ""), ("good-2", "\xa0°C")]


async def test_surrogates_and_controls_reject_their_item_on_the_fast_path(
    server: RunningServer, tenant: Tenant
) -> None:
    await _check_only_bad_items_are_rejected(server, tenant, cors=False)


async def test_surrogates_and_controls_reject_their_item_through_the_router(
    server_factory: Any, tenant_factory: Any
) -> None:
    """With CORS on, ingestion runs as a FastAPI route behind the middleware: the same answers."""
    running = server_factory(allowed_origins=ORIGIN)
    await _check_only_bad_items_are_rejected(running, await tenant_factory(running), cors=True)


async def test_a_control_character_in_a_valid_looking_batch_is_that_items_rejection(
    server: RunningServer, tenant: Tenant
) -> None:
    """msgspec takes `\\u0001` as text: the one-step decoder must still hand such a batch to the item-by-item path."""
    machine = await tenant.add_machine()
    readings = [_reading(machine, unit="°C"), _reading(machine, unit="C\x1b[0m"), _reading(machine, reading_id="\x7f")]
    response = await _post_batch(server, tenant, readings, cors=False)
    assert response.status_code == 202
    assert [r["index"] for r in response.json()["rejected"]] == [1, 2]
    assert response.json()["accepted"] == 1


async def test_unknown_top_level_field_with_a_surrogate_is_a_clear_422(server: RunningServer, tenant: Tenant) -> None:
    response = await tenant.http.post(
        "/api/v1/sensor-data",
        content=escaped({"readings": [], "\udfff": 1}),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json() == {"detail": "unknown field(s): '\\udfff'"}


async def test_history_export_and_latest_refuse_names_no_reading_can_have(
    server: RunningServer, tenant: Tenant
) -> None:
    """A NUL in metric_name made PostgreSQL fail the query: a 500 on history, a cut-off CSV on export."""
    machine = await tenant.add_machine()
    await tenant.ingest([_reading(machine)])
    for name in ("temp\x00", "te\nmp", "temp\x1b", "t e m p", "x" * 65):
        for path in ("/api/v1/sensor-data", "/api/v1/sensor-data/export"):
            response = await tenant.http.get(path, params={"machine_id": machine, "metric_name": ["temp", name]})
            assert response.status_code == 422, (path, name, response.text)
            assert "is not a metric name" in response.json()["detail"]
    for path in (f"/api/v1/machines/{machine}%00/latest", f"/api/v1/machines/{machine}%00"):
        response = await tenant.http.get(path)
        assert response.status_code == 404, path
    alerts = await tenant.http.get("/api/v1/alerts", params={"machine_id": machine + "\x00"})
    assert alerts.status_code == 422


async def test_every_stored_name_refuses_controls_and_surrogates(server: RunningServer, tenant: Tenant) -> None:
    machine = await tenant.add_machine()
    rule = {"name": "Hot", "metric_name": "temp", "condition": ">", "threshold": 1}
    user = {"email": "new@example.com", "password": "long-enough-pw", "role": "viewer"}
    cases: list[tuple[str, str, dict[str, Any], str]] = []
    # pydantic itself refuses a lone surrogate in any str field ("unable to parse raw data as a unicode string").
    for bad, reason in (("\ud800", "unicode string"), ("\x1b[2J", "control characters"), ("\x00", "NUL")):
        cases += [
            ("POST", "/api/v1/machines", {"name": f"Press{bad}"}, reason),
            ("POST", "/api/v1/machines", {"name": "Press", "location": f"Hall {bad}"}, reason),
            ("POST", "/api/v1/machines", {"name": "Press", "tags": [f"a{bad}"]}, reason),
            ("PATCH", f"/api/v1/machines/{machine}", {"name": f"x{bad}y"}, reason),
            ("PATCH", f"/api/v1/machines/{machine}", {"tags": ["ok", f"{bad}"]}, reason),
            ("POST", "/api/v1/alert-rules", {**rule, "name": f"r{bad}"}, reason),
            ("POST", "/api/v1/alert-rules", {**rule, "message": f"hot{bad}"}, reason),
            ("POST", "/api/v1/api-keys", {"name": f"edge{bad}"}, reason),
            ("POST", "/api/v1/users", {**user, "email": f"a{bad}b@example.com"}, reason),
            ("POST", "/api/v1/auth/login", {"email": f"a{bad}@b.c", "password": "whatever"}, reason),
            ("POST", "/api/v1/auth/refresh", {"refresh_token": f"a.b.c{bad}"}, reason),
        ]
    cases += [
        ("POST", "/api/v1/alert-rules", {**rule, "metric_name": "temp\n"}, "metric_name"),
        ("POST", "/api/v1/alert-rules", {**rule, "metric_name": "t\ud800"}, "metric_name"),
        ("POST", "/api/v1/users", {**user, "password": "long-enough-\ud800"}, "unicode string"),
        ("POST", "/api/v1/auth/login", {"email": "a@b.c", "password": "pw\udfff"}, "unicode string"),
        ("POST", "/api/v1/machines", {"name": "Press", "\ud800": 1}, "unicode string"),
        ("POST", "/api/v1/machines", {"name": "Press", "co\x00lour": 1}, "'co\\x00lour': Extra inputs"),
    ]
    for method, path, body, reason in cases:
        response = await tenant.http.request(
            method, path, content=escaped(body), headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 422, (path, body, response.text)
        assert reason in response.json()["detail"], (path, body, response.json())
    listing = (await tenant.http.get("/api/v1/machines")).json()
    assert [m["name"] for m in listing["items"]] == ["Press 1"]


async def test_printable_unicode_names_are_kept(server: RunningServer, tenant: Tenant) -> None:
    """The rule refuses controls and surrogates, not other text: emoji, no-break spaces, joiners stay as sent."""
    name = "Presse \U0001f9d1\u200d\U0001f527 Halle\xa02"
    created = await tenant.http.post(
        "/api/v1/machines",
        content=escaped({"name": name, "tags": ["größe"]}),
        headers={"Content-Type": "application/json"},
    )
    assert created.status_code == 201, created.text
    assert (created.json()["name"], created.json()["tags"]) == (name, ["größe"])


def _resolve(openapi: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = openapi["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _text_fields(openapi: dict[str, Any], schema: dict[str, Any], depth: int = 0) -> list[tuple[str, object]]:
    """(where, body) for each place in a body of `schema` that takes text, the text a lone surrogate."""
    schema = _resolve(openapi, schema)
    for option in schema.get("anyOf", []) + schema.get("oneOf", []):
        if _resolve(openapi, option).get("type") != "null":
            return _text_fields(openapi, option, depth)
    kind = schema.get("type")
    if kind == "string":
        return [("", "bad\ud800")]
    if kind == "array" and depth < 4:
        return [(f"[]{where}", [value]) for where, value in _text_fields(openapi, schema.get("items", {}), depth + 1)]
    if kind == "object" and depth < 4:
        return [
            (f".{name}{where}", {name: value})
            for name, prop in schema.get("properties", {}).items()
            for where, value in _text_fields(openapi, prop, depth + 1)
        ]
    return []


async def test_a_lone_surrogate_in_any_text_of_any_body_or_query_is_a_clean_refusal(
    server: RunningServer, tenant: Tenant
) -> None:
    """Every operation of /openapi.json: every text field of its body (nested ones too) given a lone surrogate,
    a 4xx (for ingest, that reading's rejection); every text query parameter given a NUL and the
    bytes of a surrogate, no 500. The document drives it: a field added tomorrow is covered."""
    openapi = (await tenant.http.get("/openapi.json", timeout=60)).json()
    tried = 0
    for path, item in openapi["paths"].items():
        for method, operation in item.items():
            url = path
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path":
                    url = url.replace("{" + parameter["name"] + "}", "00000000-0000-4000-8000-000000000000")
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "query" and _text_fields(openapi, parameter.get("schema", {})):
                    # A URL cannot spell a lone surrogate (its UTF-8 bytes decode to U+FFFD): a NUL it can.
                    response = await tenant.http.request(method, f"{url}?{parameter['name']}=bad%00%ED%A0%80")
                    assert response.status_code < 500, (method, path, parameter["name"], response.text)
                    tried += 1
            content = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if content is None:
                continue
            for where, body in _text_fields(openapi, content["schema"]):
                response = await tenant.http.request(
                    method, url, content=escaped(body), headers={"Content-Type": "application/json"}
                )
                tried += 1
                if path == "/api/v1/sensor-data" and response.status_code == 202:
                    assert [r["index"] for r in response.json()["rejected"]] == [0], (where, response.text)
                    continue
                assert 400 <= response.status_code < 500, (method, path, where, response.text)
    assert tried > 60, tried  # the walk reached the bodies (not an empty schema by mistake)


async def test_a_surrogate_in_a_rules_machine_id_is_refused_by_name(server: RunningServer, tenant: Tenant) -> None:
    rule = {"name": "Hot", "metric_name": "temp", "condition": ">", "threshold": 1, "machine_id": "bad\ud800"}
    response = await tenant.http.post(
        "/api/v1/alert-rules", content=escaped(rule), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert "machine_id" in response.json()["detail"]

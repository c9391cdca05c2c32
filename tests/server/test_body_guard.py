"""Request bodies are bounded, JSON, and never read before the sender is authenticated (server/http/body_guard.py).

The raw-socket tests send a body's head and leave the rest unsent: an answer that arrives is proof that the
server decided without reading the body (it cannot have read what was never written).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson

from haltless.server.http.body_guard import JSON_BODY_LIMIT
from tests.conftest import EVENT_TIMEOUT, RunningServer, Tenant

MIB = 1024 * 1024


async def _answer_before_body_ends(
    server: RunningServer, path: str, *, declared: int | None, sent: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    """Send the head of a POST (a `declared` Content-Length, or chunked) and `sent` of its body, never its end;
    return the answer's status, headers and JSON body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    fields = {"Host": "test", "Content-Type": "application/json", **(headers or {})}
    if declared is None:
        fields["Transfer-Encoding"] = "chunked"
        body = f"{len(sent):x}\r\n".encode() + sent + b"\r\n" if sent else b""
    else:
        fields["Content-Length"] = str(declared)
        body = sent
    head = f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items()) + "\r\n"
    writer.write(head.encode() + body)
    await writer.drain()
    try:
        async with asyncio.timeout(EVENT_TIMEOUT):
            status_line, *lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            answer_headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}
            payload = await reader.readexactly(int(answer_headers["content-length"]))
    finally:
        writer.close()
    return int(status_line.split()[1]), answer_headers, orjson.loads(payload)


async def test_unauthenticated_body_gets_401_before_it_is_read(server: RunningServer) -> None:
    # A 200 MiB POST /machines without a token: answered while the client has sent one byte of it.
    status, headers, body = await _answer_before_body_ends(server, "/api/v1/machines", declared=60_000, sent=b"{")
    assert status == 401
    assert headers["www-authenticate"] == "Bearer"
    assert "Authorization" in body["detail"]
    status, _, _ = await _answer_before_body_ends(server, "/api/v1/machines", declared=None, sent=b"{")
    assert status == 401
    bad = {"Authorization": "Bearer not-a-token"}
    status, _, body = await _answer_before_body_ends(server, "/api/v1/machines", declared=None, sent=b"{", headers=bad)
    assert status == 401
    assert body["detail"] == "invalid token"


async def test_declared_length_over_the_limit_gets_413_before_the_body(server: RunningServer) -> None:
    # The login route reads its body without a credential: only the size protects it.
    status, headers, body = await _answer_before_body_ends(server, "/api/v1/auth/login", declared=500 * MIB)
    assert status == 413
    assert body["detail"] == "request body over 64 KiB, this route's limit"
    assert headers["connection"] == "close"
    status, _, body = await _answer_before_body_ends(server, "/api/v1/sensor-data", declared=300 * MIB)
    assert status == 413
    assert "8 MiB" in body["detail"]


async def test_chunked_body_stops_being_read_at_the_limit(server: RunningServer) -> None:
    # More than the limit, and no end in sight: refused once the limit is passed, not when the body ends.
    status, headers, body = await _answer_before_body_ends(
        server, "/api/v1/auth/login", declared=None, sent=b" " * (JSON_BODY_LIMIT + 1)
    )
    assert status == 413
    assert "64 KiB" in body["detail"]
    assert headers["connection"] == "close"


async def test_small_refusal_keeps_the_connection(server: RunningServer, tenant: Tenant) -> None:
    # A declared body within the limit is drained after the answer, so the client's next request works.
    async with httpx.AsyncClient(base_url=server.base_url, timeout=EVENT_TIMEOUT) as http:
        refused = await http.post("/api/v1/machines", json={"name": "Press"})
        assert refused.status_code == 401
        assert "connection" not in refused.headers
        login = await http.post("/api/v1/auth/login", json={"email": tenant.admin_email, "password": "wrong-pass"})
        assert login.status_code == 401
        assert refused.extensions["network_stream"] is login.extensions["network_stream"]


async def test_json_route_body_over_64_kib_is_413(server: RunningServer, tenant: Tenant) -> None:
    response = await tenant.http.post("/api/v1/machines", json={"name": "x" * (JSON_BODY_LIMIT + 1)})
    assert response.status_code == 413
    assert response.json() == {"detail": "request body over 64 KiB, this route's limit"}


async def test_api_key_is_checked_once_and_still_only_ingests(server: RunningServer, tenant: Tenant) -> None:
    machine_id = await tenant.add_machine()
    key = (await tenant.http.post("/api/v1/api-keys", json={"name": "agent"})).json()["key"]
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=EVENT_TIMEOUT) as http:
        refused = await http.post("/api/v1/machines", json={"name": "Press 2"})
        assert refused.status_code == 403
        assert "API keys" in refused.json()["detail"]
        readings = [{"machine_id": machine_id, "metric_name": "t", "value": 1.0}]
        assert (await http.post("/api/v1/sensor-data", json={"readings": readings})).status_code == 202


async def test_body_that_is_not_json_is_415(server: RunningServer, tenant: Tenant) -> None:
    machine_id = await tenant.add_machine()
    body = orjson.dumps({"readings": [{"machine_id": machine_id, "metric_name": "t", "value": 1.0}]})
    for headers in ({"Content-Type": "text/plain"}, {}, {"Content-Type": "application/x-www-form-urlencoded"}):
        response = await tenant.http.post("/api/v1/sensor-data", content=body, headers=headers)
        assert response.status_code == 415, headers
        assert "application/json" in response.json()["detail"]
    machine = await tenant.http.post(
        "/api/v1/machines", content=b'{"name": "P"}', headers={"Content-Type": "text/plain"}
    )
    assert machine.status_code == 415
    charset = await tenant.http.post(
        "/api/v1/sensor-data", content=body, headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert charset.status_code == 202


async def _chunked(body: bytes) -> AsyncIterator[bytes]:
    # httpx sends an async iterable with Transfer-Encoding: chunked (no Content-Length).
    for start in range(0, len(body), 7):
        yield body[start : start + 7]


async def test_a_body_that_is_not_json_text_is_a_422_saying_where(server: RunningServer, tenant: Tenant) -> None:
    """The guard decodes every JSON route's body (FastAPI answered a body that was not UTF-8 with a 400)."""
    json_type = {"Content-Type": "application/json"}
    cases = [
        (b'{"name": }', "request body is not valid JSON: Expecting value (line 1, column 10)"),
        (b'{"name": "P"', "request body is not valid JSON: Expecting ',' delimiter (line 1, column 13)"),
        (b'{"name": "\xff"}', "request body is not valid JSON (UTF-8): byte 0xff at offset 10 is not UTF-8 text"),
        (b"[" * 10_000 + b"]" * 10_000, "request body is not valid JSON: nested too deeply"),
    ]
    for body, detail in cases:
        for content in (body, _chunked(body)):
            response = await tenant.http.post("/api/v1/machines", content=content, headers=json_type)
            assert (response.status_code, response.json()) == (422, {"detail": detail}), body[:20]
    # Unauthenticated routes too: the login's body is decoded the same way.
    async with httpx.AsyncClient(base_url=server.base_url, timeout=EVENT_TIMEOUT) as http:
        login = await http.post("/api/v1/auth/login", content=b'{"email": "a@b", ', headers=json_type)
    assert login.status_code == 422
    assert login.json()["detail"].startswith("request body is not valid JSON: ")


async def test_json_as_fastapi_takes_it_still_goes_through(tenant: Tenant) -> None:
    """What the route's reader takes is not refused by the guard: a UTF-8 BOM, a chunked body, a `\\u` escape."""
    json_type = {"Content-Type": "application/json"}
    with_bom = await tenant.http.post("/api/v1/machines", content=b'\xef\xbb\xbf{"name": "Bom"}', headers=json_type)
    assert with_bom.status_code == 201, with_bom.text
    chunked = await tenant.http.post("/api/v1/machines", content=_chunked(b'{"name": "Chunked"}'), headers=json_type)
    assert chunked.status_code == 201, chunked.text
    escaped = await tenant.http.post("/api/v1/machines", content=b'{"name": "Caf\\u00e9"}', headers=json_type)
    assert (escaped.status_code, escaped.json()["name"]) == (201, "Caf\u00e9")


async def test_refusals_carry_cors_headers(server_factory: Any) -> None:
    # The guard runs inside the CORS middleware: a browser can read why it was refused.
    running = server_factory(allowed_origins="https://dash.example.com")
    origin = {"Origin": "https://dash.example.com"}
    async with httpx.AsyncClient(base_url=running.base_url, headers=origin, timeout=EVENT_TIMEOUT) as http:
        unauthenticated = await http.post("/api/v1/machines", json={"name": "P"})
        too_large = await http.post("/api/v1/auth/login", content=b" " * (JSON_BODY_LIMIT + 1))
    assert unauthenticated.status_code == 401
    assert too_large.status_code == 413
    for response in (unauthenticated, too_large):
        assert response.headers["access-control-allow-origin"] == "https://dash.example.com"

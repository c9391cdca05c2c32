"""The uplink against an overloaded front: 503 and 429 answers are retried, Retry-After is honoured, nothing is lost."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from starlette.requests import Request
from starlette.responses import Response

from tests.agent.conftest import create_api_key, run_agent_once, stored_readings, write_config, write_csv
from tests.conftest import EVENT_TIMEOUT, RunningServer, Tenant, free_port


class OverloadedFront:
    """A stand-in for a proxy in front of Haltless: answers 503 and 429 first, then forwards to the real server."""

    def __init__(self, upstream: str, refusals: list[tuple[int, str]]) -> None:
        self.upstream = upstream
        self.refusals = list(refusals)
        self.seen: list[tuple[float, int]] = []  # (monotonic time, status answered)

    async def __call__(self, scope: dict[str, object], receive: object, send: object) -> None:
        assert scope["type"] in ("http", "lifespan")
        if scope["type"] == "lifespan":
            return
        request = Request(scope, receive)  # type: ignore[arg-type]
        body = await request.body()
        if self.refusals:
            status, retry_after = self.refusals.pop(0)
            response = Response("busy", status_code=status, headers={"Retry-After": retry_after})
        else:
            async with httpx.AsyncClient(base_url=self.upstream, timeout=EVENT_TIMEOUT) as http:
                forwarded = await http.post(
                    request.url.path,
                    content=body,
                    headers={k: v for k, v in request.headers.items() if k in ("authorization", "content-type")},
                )
            response = Response(forwarded.content, status_code=forwarded.status_code, media_type="application/json")
        self.seen.append((time.monotonic(), response.status_code))
        await response(scope, receive, send)  # type: ignore[arg-type]


@pytest.fixture
def front_factory() -> Iterator[object]:
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(app: OverloadedFront) -> str:
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 60
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        servers.append((server, thread))
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(10)


async def test_503_and_429_are_retried_after_retry_after(
    server: RunningServer, tenant: Tenant, tmp_path: Path, front_factory: object
) -> None:
    machine_id = await tenant.add_machine()
    ids = write_csv(tmp_path / "r.csv", machine_id, 50)
    front = OverloadedFront(server.base_url, [(503, "1"), (429, "1")])
    url = front_factory(front)  # type: ignore[operator]
    config = write_config(
        tmp_path, url, await create_api_key(tenant), '[[sources]]\ntype = "csv"\npath = "r.csv"\n', uplink=""
    )
    result = run_agent_once(config)
    assert result.returncode == 0, result.stderr
    assert [status for _, status in front.seen] == [503, 429, 202]
    # Backoff alone would retry after 0.05-0.1 s; the front asked for a second each time.
    gaps = [later - earlier for (earlier, _), (later, _) in zip(front.seen, front.seen[1:], strict=False)]
    assert all(gap >= 0.9 for gap in gaps), gaps
    assert sorted(reading_id for reading_id, _ in stored_readings(server)) == sorted(ids)


async def test_a_front_that_keeps_failing_leaves_readings_buffered(
    server: RunningServer, tenant: Tenant, tmp_path: Path, front_factory: object
) -> None:
    machine_id = await tenant.add_machine()
    write_csv(tmp_path / "r.csv", machine_id, 10)
    front = OverloadedFront(server.base_url, [(502, "0")] * 10)
    url = front_factory(front)  # type: ignore[operator]
    config = write_config(tmp_path, url, await create_api_key(tenant), '[[sources]]\ntype = "csv"\npath = "r.csv"\n')
    result = run_agent_once(config)
    assert result.returncode != 0
    assert [status for _, status in front.seen] == [502, 502, 502]  # once_attempts = 3, then give up
    assert stored_readings(server) == []
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert (summary["sent"], summary["buffered"], summary["complete"]) == (0, 10, False)


async def test_connection_errors_name_the_url_tried(server: RunningServer, tenant: Tenant, tmp_path: Path) -> None:
    """A wrong server_url (nothing listens there) is named in the agent's log, not only "connection refused"."""
    machine_id = await tenant.add_machine()
    write_csv(tmp_path / "r.csv", machine_id, 2)
    wrong = f"http://127.0.0.1:{free_port()}"
    config = write_config(tmp_path, wrong, await create_api_key(tenant), '[[sources]]\ntype = "csv"\npath = "r.csv"\n')
    result = run_agent_once(config)
    assert result.returncode != 0
    assert f"ConnectError for {wrong}/api/v1/sensor-data" in result.stderr, result.stderr

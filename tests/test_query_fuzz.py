"""Random and hostile query parameters on the list and history endpoints: a 4xx with a reason, never a 500.

Hypothesis draws the parameters from the edges that broke before (the ends of time, integers past 64 bits,
hand-made cursors, NUL and other control characters) mixed with arbitrary text, against a real server."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import RunningServer, Tenant

EXAMPLES = 150
_settings = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@dataclass
class Target:
    http: httpx.Client
    machine_id: str
    cursor: str  # a real history cursor, for the strategies to mangle


@pytest.fixture
async def target(server: RunningServer, tenant: Tenant) -> AsyncIterator[Target]:
    machine = await tenant.add_machine()
    readings = [
        {"machine_id": machine, "metric_name": name, "value": float(i), "timestamp": f"2026-03-02T10:00:{i:02d}Z"}
        for i in range(20)
        for name in ("temp", "vib")
    ]
    assert (await tenant.ingest(readings)).status_code == 202
    page = await tenant.http.get(
        "/api/v1/sensor-data",
        params={
            "machine_id": machine,
            "metric_name": "temp",
            "start": "2026-03-02T10:00:00Z",
            "end": "2026-03-03T00:00:00Z",
            "limit": 3,
        },
    )
    # Hypothesis runs a plain function per example: a blocking client, while the server runs in its own thread.
    with httpx.Client(base_url=server.base_url, headers=tenant.http.headers, timeout=30) as http:
        yield Target(http, machine, page.json()["next_cursor"])


_EDGE_TIMES = [
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:30:00Z",
    "0001-01-01T00:00:00+23:59",
    "9999-12-31T23:30:00Z",
    "9999-12-31T23:59:59.999999Z",
    "9999-12-31T23:59:59-23:59",
    "1969-12-31T23:59:59Z",
    "1970-01-01T00:00:00Z",
    "2026-03-02T10:00:00Z",
    "2026-03-02T10:00:05+01:00",
    "2026-03-02T10:00:00",
    "2026-03-02",
    "now",
]
_times = st.one_of(
    st.none(),
    st.sampled_from(_EDGE_TIMES),
    st.datetimes().map(lambda moment: moment.isoformat() + "Z"),
    st.text(max_size=30),
)
_big_ints = st.one_of(st.integers(-(2**70), 2**70), st.sampled_from([2**63, 2**63 - 1, -(2**63), 10**30, 0, 1, -1]))
_numbers = st.one_of(st.none(), _big_ints.map(str), st.text(max_size=8))
_names = st.one_of(
    st.sampled_from(["temp", "vib", "temp,vib", " temp , vib ", "temp\x00", "t\nmp", "", ",", "x" * 65, "a b"]),
    st.text(max_size=70),
)


def _unsigned(fields: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(fields).encode()).rstrip(b"=").decode()


@st.composite
def _cursors(draw: st.DrawFn, real: str) -> str | None:
    kind = draw(st.integers(0, 4))
    if kind == 0:
        return None
    if kind == 1:
        return real
    if kind == 2:  # the real one with a character changed
        at = draw(st.integers(0, len(real) - 1))
        return real[:at] + draw(st.sampled_from("AZaz09-_.=")) + real[at + 1 :]
    if kind == 3:  # the unsigned format of earlier versions, with any fields
        return _unsigned([1, *draw(st.lists(_big_ints, min_size=5, max_size=5)), "0" * 12])
    return draw(st.text(max_size=80))


def _query(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def _check(response: httpx.Response, allowed: set[int]) -> None:
    assert response.status_code in allowed, (response.request.url, response.status_code, response.text[:500])
    if response.status_code != 200 or response.headers["content-type"].startswith("application/json"):
        response.json()  # every answer, errors included, is whole JSON


@pytest.mark.parametrize("path", ["/api/v1/sensor-data", "/api/v1/sensor-data/export"])
async def test_history_queries_never_fail(target: Target, path: str) -> None:
    @_settings
    @given(st.data())
    def run(data: st.DataObject) -> None:
        params = _query(
            {
                "machine_id": data.draw(st.one_of(st.just(target.machine_id), st.text(max_size=40))),
                "metric_name": data.draw(st.lists(_names, max_size=3)),
                "start": data.draw(_times),
                "end": data.draw(_times),
                "interval": data.draw(
                    st.one_of(st.none(), st.sampled_from(["1s", "1m", "1d", "366d"]), st.text(max_size=6))
                ),
                "max_points": data.draw(_numbers),
                "limit": data.draw(_numbers),
                "cursor": data.draw(_cursors(target.cursor)),
            }
        )
        # Read to the end: an export that fails midway shows as a broken chunked body here.
        response = target.http.get(path, params=params)
        _check(response, {200, 404, 422})

    run()


async def test_machine_and_alert_lists_never_fail(target: Target) -> None:
    @_settings
    @given(st.data())
    def run(data: st.DataObject) -> None:
        machines = target.http.get(
            "/api/v1/machines",
            params=_query(
                {
                    "limit": data.draw(_numbers),
                    "offset": data.draw(_numbers),
                    "include": data.draw(
                        st.one_of(st.none(), st.sampled_from(["latest", "latest,x"]), st.text(max_size=10))
                    ),
                }
            ),
        )
        _check(machines, {200, 422})
        alerts = target.http.get(
            "/api/v1/alerts",
            params=_query(
                {
                    "state": data.draw(st.one_of(st.none(), st.sampled_from(["open", "active"]), st.text(max_size=10))),
                    "machine_id": data.draw(st.one_of(st.none(), st.just(target.machine_id), st.text(max_size=40))),
                    "rule_id": data.draw(st.one_of(st.none(), st.text(max_size=40))),
                    "limit": data.draw(_numbers),
                    "cursor": data.draw(_cursors(target.cursor)),
                }
            ),
        )
        _check(alerts, {200, 422})

    run()

"""Random bodies and ids on the notification routes: a 4xx with a reason, never a 500 (hypothesis, real server)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import RunningServer, Tenant

_settings = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

_EDGE_TEXT = ["", " ", "\x00", "x" * 3000, "2999-01-01T00:00:00Z", "0001-01-01T00:00:00+23:59", "-1", "1e400"]
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(_EDGE_TEXT),
    st.text(max_size=30),
)
_json = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=12,
)
_FIELDS = {
    "/api/v1/notification-channels": ["name", "type", "webhook", "email"],
    "/api/v1/notification-policies": [
        "name",
        "channel_ids",
        "matchers",
        "group_by",
        "group_wait",
        "group_interval",
        "repeat_interval",
        "escalate_after",
        "escalation_channel_ids",
        "is_default",
    ],
    "/api/v1/silences": ["matchers", "starts_at", "ends_at", "comment"],
}


@pytest.fixture
def http(server: RunningServer, tenant: Tenant) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, headers=tenant.http.headers, timeout=30) as client:
        yield client


@_settings
@given(
    path=st.sampled_from(sorted(_FIELDS)),
    body=st.data(),
)
def test_create_bodies_never_500(http: httpx.Client, path: str, body: st.DataObject) -> None:
    fields = _FIELDS[path]
    document: dict[str, Any] = body.draw(st.dictionaries(st.sampled_from(fields), _json, max_size=len(fields)))
    response = http.post(path, json=document)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert isinstance(response.json()["detail"], str | list)


@_settings
@given(
    ident=st.one_of(
        st.text(max_size=40), st.sampled_from(["00000000-0000-0000-0000-000000000000", "%00", "..", "x" * 500])
    ),
    route=st.sampled_from(
        [
            ("GET", "/api/v1/notification-channels/{}"),
            ("POST", "/api/v1/notification-channels/{}/test"),
            ("PATCH", "/api/v1/notification-policies/{}"),
            ("POST", "/api/v1/silences/{}/expire"),
            ("GET", "/api/v1/notifications/{}"),
            ("GET", "/api/v1/alerts/{}/notification-status"),
        ]
    ),
    query=st.dictionaries(
        st.sampled_from(["state", "channel_id", "limit", "cursor"]), st.text(max_size=20), max_size=3
    ),
)
def test_ids_and_queries_never_500(
    http: httpx.Client, ident: str, route: tuple[str, str], query: dict[str, str]
) -> None:
    method, template = route
    response = http.request(
        method, template.format(quote(ident, safe="") or "%20"), json={} if method == "PATCH" else None
    )
    assert response.status_code < 500, response.text
    listed = http.get("/api/v1/notifications", params=query)
    assert listed.status_code < 500, listed.text

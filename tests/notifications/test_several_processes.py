"""Two servers on one PostgreSQL database (shared mode): each notification is sent by exactly one of them."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import orjson
import pytest

from haltless.core.clock import ManualClock
from tests.conftest import Tenant
from tests.notifications.conftest import WebhookReceiver, run_cycle
from tests.notifications.test_delivery import _policy, _reading, _rule, _webhook


async def test_two_dispatchers_send_each_notification_once(
    database_backend: str, server_factory: Any, tenant_factory: Any, clock: ManualClock, receiver: WebhookReceiver
) -> None:
    if database_backend != "postgresql":
        pytest.skip("several server processes share a PostgreSQL database; SQLite is one process's")
    shared = {
        "webhook_allow_networks": "127.0.0.0/8",
        "bus_url": "redis://127.0.0.1:6379/0",
        "bus_prefix": f"notify-{uuid.uuid4().hex[:10]}",
    }
    first, second = server_factory(**shared), server_factory(**shared)
    for running in (first, second):
        running.state.notifier.clock = clock.now_us
    tenant: Tenant = await tenant_factory(first)
    hook = await _webhook(tenant, receiver)
    await _policy(tenant, [hook], group_by="machine", group_wait=10)
    await _rule(tenant)
    machines = [await tenant.add_machine(f"Cell {n}") for n in range(20)]
    await tenant.ingest([_reading(m, 99.0) for m in machines])

    clock.advance(10)
    for _ in range(3):
        await asyncio.gather(run_cycle(first), run_cycle(second))
    keys = [r.headers["idempotency-key"] for r in receiver.requests]
    listed = (await tenant.http.get("/api/v1/notifications")).json()["items"]
    assert len(keys) == 20, [(n["state"], n["attempts"], n["last_error"]) for n in listed if n["state"] != "delivered"]
    assert len(set(keys)) == 20
    assert {orjson.loads(r.body)["alerts"][0]["machine_id"] for r in receiver.requests} == set(machines)

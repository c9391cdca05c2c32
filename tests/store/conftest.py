"""A migrated engine on the test's backend, with one tenant and one machine to hang readings on."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from haltless.store import accounts, machines


@dataclass(frozen=True)
class Fleet:
    """A tenant with one machine in a freshly migrated database."""

    engine: AsyncEngine
    tenant_id: str
    machine_id: str


@pytest.fixture
async def fleet(engine: AsyncEngine) -> Fleet:
    async with engine.begin() as conn:
        tenant_id, _ = await accounts.create_tenant(
            conn, name="Plant", email="admin@example.com", password_hash="x", now=1
        )
        machine = await machines.create(conn, tenant_id=tenant_id, name="Press", location=None, tags=["a"], now=1)
    return Fleet(engine, tenant_id, machine.id)

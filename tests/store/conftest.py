"""A migrated engine on the test's backend, with one tenant and one machine to hang readings on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from haltless.store import accounts, machines
from haltless.store.database import create_engine, migrate


@dataclass(frozen=True)
class Fleet:
    """A tenant with one machine in a freshly migrated database."""

    engine: AsyncEngine
    tenant_id: str
    machine_id: str


@pytest.fixture
async def engine(tmp_path: Path, database_url: str | None) -> AsyncIterator[AsyncEngine]:
    created = create_engine(database_url or f"sqlite+aiosqlite:///{tmp_path / 'haltless.db'}")
    await migrate(created)
    try:
        yield created
    finally:
        await created.dispose()


@pytest.fixture
async def fleet(engine: AsyncEngine) -> Fleet:
    async with engine.begin() as conn:
        tenant_id, _ = await accounts.create_tenant(
            conn, name="Plant", email="admin@example.com", password_hash="x", now=1
        )
        machine = await machines.create(conn, tenant_id=tenant_id, name="Press", location=None, tags=["a"], now=1)
    return Fleet(engine, tenant_id, machine.id)

"""A migrated engine on the test's backend, with one tenant and one machine to hang readings on; and what the
engine sends to its database."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import event
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


@contextlib.contextmanager
def statements_sent(engine: AsyncEngine) -> Iterator[list[tuple[str, Any]]]:
    """The (statement, parameters) the engine sends to its database while the block runs, in order."""
    sent: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        sent.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", capture)
    try:
        yield sent
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", capture)

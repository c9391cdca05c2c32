"""Machine bookkeeping on both backends: `last_seen_at` only moves forward, and only for the machines named."""

from __future__ import annotations

import pytest

from haltless.store import machines
from tests.store.conftest import Fleet


async def _last_seen(fleet: Fleet, machine_id: str) -> int | None:
    async with fleet.engine.connect() as conn:
        found = await machines.get(conn, tenant_id=fleet.tenant_id, machine_id=machine_id)
    assert found is not None
    return found.last_seen_at


async def test_mark_seen_advances_and_never_goes_back(fleet: Fleet) -> None:
    async with fleet.engine.begin() as conn:
        other = await machines.create(conn, tenant_id=fleet.tenant_id, name="Lathe", location=None, tags=[], now=1)
    for seen in (500, 200, 700):
        async with fleet.engine.begin() as conn:
            await machines.mark_seen(conn, machine_ids=[fleet.machine_id, fleet.machine_id], seen=seen)
    assert await _last_seen(fleet, fleet.machine_id) == 700
    assert await _last_seen(fleet, other.id) is None
    async with fleet.engine.begin() as conn:
        await machines.mark_seen(conn, machine_ids=[other.id, fleet.machine_id], seen=650)
    assert (await _last_seen(fleet, fleet.machine_id), await _last_seen(fleet, other.id)) == (700, 650)


async def test_mark_seen_rolls_back_with_its_transaction(fleet: Fleet) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        async with fleet.engine.begin() as conn:
            await machines.mark_seen(conn, machine_ids=[fleet.machine_id], seen=900)
            raise RuntimeError("boom")
    assert await _last_seen(fleet, fleet.machine_id) is None

"""Shared mode (several processes on one PostgreSQL database): a process fetches a tenant's rules again only when
another change moved `tenants.rules_revision`, and every kind of rule change moves it (issue 21)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from haltless.bus.memory import MemoryBus
from haltless.core.clock import ManualClock
from haltless.core.fleet import Fleet as TenantFleet
from haltless.core.plan import Plan
from haltless.core.planners import machines as machine_planner
from haltless.core.planners import rules as rule_planner
from haltless.core.rules import Condition, Rule, Severity
from haltless.server.service.changes import Changes
from haltless.store import machines
from tests.store.conftest import Fleet, statements_sent


def _rule(fleet: Fleet, rule_id: str, machine_id: str | None, threshold: float) -> Rule:
    return Rule(
        id=rule_id,
        tenant_id=fleet.tenant_id,
        name=f"hot {rule_id}",
        metric_name="temperature",
        machine_id=machine_id,
        condition=Condition.GT,
        threshold=threshold,
        severity=Severity.CRITICAL,
        for_seconds=0.0,
        hysteresis=0.0,
        enabled=True,
        message=None,
    )


def _process(fleet: Fleet) -> Changes:
    """What one server process of several holds: its own fleets, refreshed from the shared database."""
    return Changes(fleet.engine, MemoryBus(10), ManualClock(1), offline_after=60, shared=True)


async def _refreshed(process: Changes, fleet: Fleet) -> tuple[dict[str, float], list[str]]:
    """The rules `process` plans with after a refresh (id -> threshold), and the statements that read rules."""
    with statements_sent(fleet.engine) as sent:
        async with process.for_tenant(fleet.tenant_id, [fleet.machine_id]) as tx:
            rules = {rule.id: rule.threshold for rule in tx.fleet.rules.values()}
    return rules, [statement for statement, _ in sent if "FROM alert_rules" in statement]


async def test_a_process_refetches_rules_only_after_another_changed_them(fleet: Fleet) -> None:
    if fleet.engine.dialect.name != "postgresql":
        pytest.skip("shared mode runs on PostgreSQL only (server/app.py)")
    async with fleet.engine.begin() as conn:
        other = await machines.create(conn, tenant_id=fleet.tenant_id, name="Lathe", location=None, tags=[], now=1)
    a, b = _process(fleet), _process(fleet)

    rules, fetched = await _refreshed(b, fleet)
    assert rules == {} and len(fetched) == 1  # a fleet that never loaded fetches them

    async def change(plan_of: Callable[[TenantFleet, int], Plan]) -> None:
        async with a.for_tenant(fleet.tenant_id) as tx:
            tx.apply(plan_of(tx.fleet, tx.now_us))

    created = _rule(fleet, "r1", None, 80.0)
    await change(lambda f, now: rule_planner.plan_create(f, created, now))
    rules, fetched = await _refreshed(b, fleet)
    assert rules == {"r1": 80.0} and len(fetched) == 1

    # Nothing changed: one value read instead of every rule, and the kept answers of `rules_for` survive.
    kept = b.fleet(fleet.tenant_id).rules_for(fleet.machine_id, "temperature")
    rules, fetched = await _refreshed(b, fleet)
    assert rules == {"r1": 80.0} and fetched == []
    assert b.fleet(fleet.tenant_id).rules_for(fleet.machine_id, "temperature") is kept

    await change(lambda f, now: rule_planner.plan_update(f, created, replace(created, threshold=90.0), now))
    assert (await _refreshed(b, fleet))[0] == {"r1": 90.0}

    bound = _rule(fleet, "r2", other.id, 70.0)
    await change(lambda f, now: rule_planner.plan_create(f, bound, now))
    assert (await _refreshed(b, fleet))[0] == {"r1": 90.0, "r2": 70.0}

    # A removed machine takes the rules bound to it (ON DELETE CASCADE) without a rule change of its own.
    await change(lambda f, now: machine_planner.plan_remove(f, other.id, now))
    assert (await _refreshed(b, fleet))[0] == {"r1": 90.0}

    await change(lambda f, now: rule_planner.plan_delete(f, replace(created, threshold=90.0), now))
    assert (await _refreshed(b, fleet))[0] == {}

    # The process that made the changes planned with them too, and reloads what the other process does.
    assert (await _refreshed(a, fleet))[0] == {}

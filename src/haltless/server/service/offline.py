"""The offline watcher: a background task that turns machines offline when their readings stop."""

from __future__ import annotations

from haltless.core.planners.offline import due_offline, plan_offline
from haltless.server.service.background import Watcher
from haltless.server.service.changes import Changes, group_by_tenant
from haltless.store import alerts as alert_store


class OfflineWatcher(Watcher):
    """Every `tick` seconds: the machines whose last reading arrived HALTLESS_OFFLINE_AFTER ago go offline."""

    name = "offline check"

    def __init__(self, changes: Changes, *, tick: float) -> None:
        super().__init__(tick=tick)
        self._changes = changes

    async def run_pass(self) -> None:
        """One pass: every machine due at the clock's `now` goes offline (one change per tenant)."""
        changes = self._changes
        now_us = changes.clock.now_us()
        if changes.shared:
            # Another process may have the newer readings: the database says who is due.
            async with changes.engine.connect() as conn:
                pairs = await alert_store.machines_due_offline(conn, deadline=now_us - changes.offline_after_us)
            due = group_by_tenant(pairs)
        else:
            due = {fleet.tenant_id: ids for fleet in changes.fleets() if (ids := due_offline(fleet, now_us))}
        for tenant_id, machine_ids in due.items():
            async with changes.for_tenant(tenant_id, machine_ids) as tx:
                tx.apply(plan_offline(tx.fleet, machine_ids, tx.now_us))

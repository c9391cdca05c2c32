"""The no_data watcher: a background task that opens `no_data` alerts when a watched metric stops arriving."""

from __future__ import annotations

from collections import defaultdict

from haltless.core.planners.no_data import due_no_data, plan_no_data
from haltless.server.service.background import Watcher
from haltless.server.service.changes import Changes
from haltless.store import alerts as alert_store
from haltless.store.no_data import silent_pairs


class NoDataWatcher(Watcher):
    """Every `tick` seconds: (rule, machine) pairs silent for the rule's `for_seconds` get an alert.

    Modelled on the offline watcher (server/service/offline.py): from memory in one process, from the database when
    several share it; the unit of work re-checks under the tenant's lock, so two processes open one alert.
    """

    name = "no_data check"

    def __init__(self, changes: Changes, *, tick: float) -> None:
        super().__init__(tick=tick)
        self._changes = changes
        # The server's own downtime is no gap (core/planners/no_data.py): silence counts from here at the earliest.
        self.started_at = changes.clock.now_us()

    def starting(self) -> None:
        self.started_at = self._changes.clock.now_us()

    async def run_pass(self) -> None:
        """One pass at the clock's `now` (one change per tenant with something due)."""
        changes = self._changes
        now_us = changes.clock.now_us()
        due: dict[str, list[tuple[str, str]]] = defaultdict(list)
        if changes.shared:
            async with changes.engine.connect() as conn:
                for tenant_id, rule_id, machine_id in await silent_pairs(conn, now=now_us, not_before=self.started_at):
                    due[tenant_id].append((rule_id, machine_id))
        else:
            for fleet in changes.fleets():
                pairs = due_no_data(fleet, now_us, self.started_at)
                if pairs:
                    due[fleet.tenant_id] = pairs
        for tenant_id, pairs in due.items():
            async with changes.for_tenant(tenant_id, {machine_id for _, machine_id in pairs}) as tx:
                tx.apply(plan_no_data(tx.fleet, pairs, tx.now_us, self.started_at, alert_store.new_id))

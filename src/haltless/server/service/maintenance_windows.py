"""The maintenance window scheduler: a background task that puts machines into maintenance and back on schedule."""

from __future__ import annotations

from collections import defaultdict

from haltless.core.maintenance_windows import MachineView, Window, plan_windows
from haltless.core.planners.maintenance import plan_maintenance_of
from haltless.server.service.background import Watcher
from haltless.server.service.changes import Changes
from haltless.store import maintenance_windows as store


class WindowScheduler(Watcher):
    """Every `tick` seconds, at the injected clock's `now`: machines a window covers enter maintenance, machines a
    window put there leave it when no window covers them any more (core/maintenance_windows.py).

    Each tenant's change is decided again inside the unit of work, from the machines as the database has them
    under the tenant's lock, so several processes running the scheduler change each machine once.
    """

    name = "maintenance window pass"

    def __init__(self, changes: Changes, *, tick: float) -> None:
        super().__init__(tick=tick)
        self._changes = changes

    async def run_pass(self) -> None:
        """One pass (one change per tenant whose machines' maintenance changes)."""
        changes = self._changes
        now_us = changes.clock.now_us()
        async with changes.engine.connect() as conn:
            windows: dict[str, list[Window]] = defaultdict(list)
            for stored in await store.enabled_windows(conn):
                windows[stored.window.tenant_id].append(stored.window)
            views = await store.machine_views(conn, windows)
        for tenant_id, machines in views.items():
            if not plan_windows(windows[tenant_id], machines, now_us):
                continue
            ids = [m.machine_id for m in machines]
            async with changes.for_tenant(tenant_id, ids) as tx:
                # Decided again from what the database says now, under the tenant's lock.
                fresh = (await store.machine_views(tx.conn, [tenant_id])).get(tenant_id, [])
                fleet = tx.fleet
                current = [
                    MachineView(m.machine_id, m.tags, fleet.health[m.machine_id].maintenance, m.window_id)
                    for m in fresh
                    if m.machine_id in fleet.health
                ]
                decided = plan_windows(windows[tenant_id], current, tx.now_us)
                for window_id in set(decided.enter.values()):
                    await store.set_window_owner(
                        tx.conn, [m for m, w in decided.enter.items() if w == window_id], window_id
                    )
                await store.set_window_owner(tx.conn, decided.leave, None)
                switches = {m: True for m in decided.enter} | {m: False for m in decided.leave}
                tx.apply(plan_maintenance_of(fleet, switches, tx.now_us))

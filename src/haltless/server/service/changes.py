"""The unit of work: the one way any change of a tenant's state is made.

    async with changes.for_tenant(tenant_id, machine_ids) as tx:
        thing = await store.read(tx.conn, ...)            # reads the change depends on, inside it
        tx.apply(planner(tx.fleet, thing, tx.now_us))      # a pure planner (core/planners/) builds the plan

Entering takes the tenant's lock (on SQLite one lock for everyone: it has one writer), and across processes
(shared mode: PostgreSQL and the Redis bus) a PostgreSQL advisory lock per tenant; opens the transaction;
and refreshes from the database what the plan reads (`refresh`; shared mode only, where memory is a cache).
Leaving persists the plan, commits, applies it to the in-memory fleet and publishes its events, in that
order, before the locks are let go. So memory never runs ahead of the database, each reading is evaluated
exactly once (by the process that stored it) against the state the previous change committed (in any
process), and a tenant's events are published in the order its changes happened. An exception in the block
rolls everything back: nothing is applied or published.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from haltless.bus import EventBus
from haltless.core.clock import Clock
from haltless.core.fleet import Fleet
from haltless.core.health import MachineHealth
from haltless.core.models import MachineStatus
from haltless.core.plan import SYSTEM, Plan, TransitionKind
from haltless.core.readings import Reading
from haltless.core.rules import RuleKind, RuleState
from haltless.server.service import predictive as predictive_detectors
from haltless.server.service.units import UnitBook
from haltless.store import alert_history, machines, readings
from haltless.store import alerts as alert_store
from haltless.store import units as unit_store
from haltless.store.database import begin_write

if TYPE_CHECKING:
    from haltless.server.service.notifier import Notifier


class Change:
    """One change in progress (`tx`): its connection (in a transaction), the tenant's fleet, and `now`."""

    __slots__ = ("_changes", "_locked", "conn", "fleet", "now_us", "plan")

    def __init__(self, changes: Changes, conn: AsyncConnection, fleet: Fleet, now_us: int) -> None:
        self._changes = changes
        self._locked = False
        self.conn = conn
        self.fleet = fleet
        self.now_us = now_us
        self.plan: Plan | None = None

    async def before_reads(self) -> None:
        """Take the database's write lock (SQLite: BEGIN IMMEDIATE) unless this change holds it already: what it
        reads then cannot change before it writes. A change entered with `lock_reads=False` calls this before
        its first query; its first write takes the lock by itself."""
        if not self._locked:
            await begin_write(self.conn)
            self._locked = True

    async def refresh(self, machine_ids: Iterable[str] | None, batch: Sequence[Reading] = ()) -> None:
        """Reload the tenant's rules and the state of `machine_ids` (None: all its machines) before planning, and
        the clocks of the series of the `batch` of readings to plan; only in shared mode, where another process may
        have changed them."""
        if self._changes.shared:
            await self.before_reads()
            series = {(reading.machine_id, reading.metric_name) for reading in batch} if batch else None
            await self._changes.reload(self.conn, self.fleet, machine_ids, series)

    async def prepare_detectors(self, batch: Sequence[Reading]) -> None:
        """Before a stored batch is planned: bring the detectors of predictive rules it will feed in step with the
        database (server/service/predictive.py); nothing to do for a tenant without such rules."""
        fleet = self.fleet
        if not fleet.predictive_rules:
            return
        due = []
        for machine_id, metric_name in {(reading.machine_id, reading.metric_name) for reading in batch}:
            for rule in fleet.rules_for(machine_id, metric_name):
                if rule.kind is not RuleKind.THRESHOLD:
                    due.append((rule, machine_id))
        await predictive_detectors.prepare(self.conn, fleet.detectors, fleet.states, due, batch, self.before_reads)

    def apply(self, plan: Plan) -> None:
        """The plan this change makes: persisted, committed, applied and published when the block ends."""
        if self.plan is not None:
            raise RuntimeError("a change applies one plan")
        if plan.tenant_id != self.fleet.tenant_id:
            raise RuntimeError("a plan of another tenant")
        self.plan = plan


class Changes:
    """The fleets of every tenant this process serves, and the one way to change them."""

    def __init__(self, engine: AsyncEngine, bus: EventBus, clock: Clock, *, offline_after: float, shared: bool) -> None:
        self.engine = engine
        self.clock = clock
        self.shared = shared
        self.offline_after_us = int(offline_after * 1_000_000)
        self._bus = bus
        # SQLite has one writer: one lock for everything queues writers here instead of on the file lock.
        # Other databases: one lock per tenant, so tenants do not wait for each other.
        self._single_writer = engine.dialect.name == "sqlite"
        self._global_lock = asyncio.Lock()
        self._tenant_locks: dict[str, asyncio.Lock] = {}
        self._fleets: dict[str, Fleet] = {}
        # The unit of each (machine, metric) (issue 19): read by ingest inside a change, filled on commit.
        self.units = UnitBook()
        # Writes the notification outbox in the transaction of each alert change (set by the app's lifespan).
        self.notifier: Notifier | None = None

    def fleet(self, tenant_id: str) -> Fleet:
        fleet = self._fleets.get(tenant_id)
        if fleet is None:
            fleet = self._fleets[tenant_id] = Fleet(tenant_id, self.offline_after_us)
        return fleet

    def fleets(self) -> list[Fleet]:
        return list(self._fleets.values())

    async def load(self) -> None:
        """Read rules, rule states, open alerts and machines of every tenant into memory."""
        async with self.engine.connect() as conn:
            for rule in await alert_store.all_rules(conn):
                self.fleet(rule.tenant_id).add_rule(rule)
            tenant_of: dict[str, str] = {}
            for machine_id, tenant_id, status, maintenance, last_seen in await alert_store.machine_health_rows(conn):
                tenant_of[machine_id] = tenant_id
                self.fleet(tenant_id).health[machine_id] = MachineHealth(
                    machine_id, tenant_id, MachineStatus(status), maintenance, last_seen
                )
            for (machine_id, metric), newest in (await alert_store.newest_per_series(conn)).items():
                owner = tenant_of.get(machine_id)
                if owner is not None:
                    self.fleet(owner).series_ts[(machine_id, metric)] = newest
            by_tenant: dict[str, dict[tuple[str, str], RuleState]] = defaultdict(dict)
            for key, state in (await alert_store.load_rule_states(conn)).items():
                owner = tenant_of.get(key[1])
                if owner is not None:
                    by_tenant[owner][key] = state
            for tenant_id, states in by_tenant.items():
                self.fleet(tenant_id).load_states(states)
            for fleet in self._fleets.values():
                _catch_up_predictive(fleet)
            for alert in await alert_store.open_alerts(conn):
                self.fleet(alert.tenant_id).track_open(alert)

    async def reload(
        self,
        conn: AsyncConnection,
        fleet: Fleet,
        machine_ids: Iterable[str] | None,
        series: Iterable[tuple[str, str]] | None = None,
    ) -> None:
        """Replace the fleet's rules, the state of `machine_ids` (None: all) and the clocks of the (machine, metric)
        `series` a batch of readings brings (`Fleet.series_ts`), with the database's.

        The rules are fetched only when the tenant's `rules_revision` moved since the fleet's last reload: every
        change of them raises it in its own transaction (`_persist`), so an unchanged value means unchanged rules.
        Before, each change fetched all of them: with 1,000 rules, a 1,000-row query before every ingest batch, and
        `Fleet.rules_for` kept nothing from one batch to the next. Read first: a rule change committed between the
        two reads then makes the next refresh fetch again, never the other way round."""
        wanted = None if machine_ids is None else set(machine_ids)
        revision = await alert_store.rules_revision(conn, fleet.tenant_id)
        rules = None
        if revision is None or revision != fleet.rules_revision:
            rules = await alert_store.rules_of_tenant(conn, fleet.tenant_id)
        rows = await alert_store.machine_health_rows(conn, tenant_id=fleet.tenant_id, machine_ids=wanted)
        healths = [MachineHealth(m, t, MachineStatus(s), maintenance, seen) for m, t, s, maintenance, seen in rows]
        ids = {h.machine_id for h in healths}
        states = await alert_store.load_rule_states(conn, machine_ids=ids)
        open_alerts = await alert_store.open_alerts(conn, machine_ids=ids)
        fleet.reload(rules, healths, states, open_alerts, rules_revision=revision)
        if series is not None:
            # What is late for their threshold rules: another process may have stored newer readings of them.
            watched = [(m, metric) for m, metric in set(series) if m in ids and fleet.rules_for(m, metric)]
            fleet.series_ts.update(await readings.newest_of_series(conn, series=watched))

    @contextlib.asynccontextmanager
    async def for_tenant(
        self,
        tenant_id: str,
        machine_ids: Iterable[str] | None = None,
        *,
        refresh: bool = True,
        lock_reads: bool = True,
    ) -> AsyncIterator[Change]:
        """A change of the tenant's state (see the module docstring). `machine_ids`: what the plan reads (None:
        every machine of the tenant); `refresh=False` when the block calls `tx.refresh` itself once it knows;
        `lock_reads=False` when the block calls `tx.before_reads()` before any query it makes (ingest: most
        batches read nothing, and BEGIN IMMEDIATE is a round trip to SQLite's thread of its own)."""
        lock = self._global_lock
        if not self._single_writer:
            lock = self._tenant_locks.setdefault(tenant_id, asyncio.Lock())
        async with lock, self.engine.connect() as conn:
            key = None
            if self.shared:
                key = _advisory_key(tenant_id)
                await conn.execute(select(func.pg_advisory_lock(key)))
                await conn.commit()
            try:
                tx = Change(self, conn, self.fleet(tenant_id), self.clock.now_us())
                async with conn.begin():
                    if lock_reads:
                        await tx.before_reads()
                    if refresh:
                        await tx.refresh(machine_ids)
                    yield tx
                    plan = tx.plan
                    if plan is not None:
                        await self._persist(conn, tx.fleet, plan)
                if plan is not None:
                    tx.fleet.apply(plan)
                    self.units.committed(plan.units)
                    if plan.events:
                        await self._bus.publish(tenant_id, plan.events)
                    if plan.alert_transitions and self.notifier is not None:
                        # After the commit: woken earlier, the dispatcher looked before the outbox rows were
                        # visible and slept until its next poll.
                        self.notifier.wake()
            finally:
                if key is not None:
                    if conn.in_transaction():
                        await conn.rollback()
                    await conn.execute(select(func.pg_advisory_unlock(key)))
                    await conn.commit()

    async def _persist(self, conn: AsyncConnection, fleet: Fleet, plan: Plan) -> None:
        """Write a plan inside the change's transaction."""
        tenant_id = plan.tenant_id
        if plan.units:
            # A pair another writer registered meanwhile raises IntegrityError: ingest retries against the database.
            await unit_store.register(conn, units=plan.units)
        if plan.readings:
            await readings.store_batch(
                conn, tenant_id=tenant_id, batch=plan.readings, received_at=plan.at, machine_ids=plan.reporting
            )
        for machine in plan.machines_added:
            await machines.create(
                conn,
                tenant_id=tenant_id,
                name=machine.name,
                location=machine.location,
                tags=machine.tags,
                now=machine.created_at,
                machine_id=machine.id,
            )
        for machine_id, values in plan.machine_edits.items():
            await machines.update_fields(conn, tenant_id=tenant_id, machine_id=machine_id, values=values)
        for machine_id, maintenance in plan.maintenance_changes.items():
            await alert_store.set_maintenance(conn, machine_id, maintenance)
        for rule in plan.rules_created:
            await alert_store.insert_rule(conn, rule, plan.at)
        for rule in plan.rules_updated:
            await alert_store.replace_rule(conn, rule, plan.at)
        if plan.alert_transitions:
            await persist_alert_transitions(conn, plan, self.notifier)
        for alert_id, message, crossing in plan.predictions:
            await alert_store.update_prediction(conn, alert_id, message=message, predicted_crossing_at=crossing)
        for rule_id in plan.rule_states_reset:
            if rule_id not in plan.rules_deleted:  # a deleted rule's states go with it
                await alert_store.delete_rule_states(conn, rule_id)
        await alert_store.save_rule_states(conn, plan.states if self.shared else fleet.states_to_write(plan))
        await alert_store.set_machine_status(conn, plan.status_changes)
        for rule_id in plan.rules_deleted:
            await alert_store.delete_rule(conn, rule_id)
        for machine_id in plan.machines_removed:
            await machines.remove(conn, tenant_id=tenant_id, machine_id=machine_id)
        if plan.rules_created or plan.rules_updated or plan.rules_deleted or plan.machines_removed:
            # The rules changed (a removed machine takes the rules bound to it): other processes reload them.
            await alert_store.raise_rules_revision(conn, tenant_id)


async def persist_alert_transitions(conn: AsyncConnection, plan: Plan, notifier: Notifier | None) -> None:
    """Write every alert transition of a plan, in order, in the change's transaction.

    The one place alert transitions reach the database: whatever else must happen, durably, along with one
    (a notification outbox row, an audit entry) is written here, in the same transaction.
    """
    for transition in plan.alert_transitions:
        alert = transition.alert
        kind = transition.kind
        if kind is TransitionKind.OPENED:
            await alert_store.insert_alert(conn, alert)
        elif kind is TransitionKind.ACKNOWLEDGED:
            await alert_store.acknowledge_alert(
                conn, alert.id, at=transition.at, by=transition.actor, comment=transition.comment
            )
        elif kind is TransitionKind.RESOLVED:
            by = None if transition.actor == SYSTEM else transition.actor
            await alert_store.resolve_alert(
                conn, alert.id, at=transition.at, by=by, resolution=alert.resolution or "manual"
            )
        elif kind in (TransitionKind.SHELVED, TransitionKind.UNSHELVED):
            await alert_store.shelve_alert(conn, alert.id, until=alert.shelved_until)
        elif kind is TransitionKind.SEVERITY_RAISED:
            await alert_store.set_severity(conn, alert.id, alert.severity.value)
    # The audit trail (docs/alerts.md#history): one entry per transition, in this same transaction.
    await alert_history.append(
        conn,
        [
            alert_history.Entry(plan.tenant_id, t.alert.id, t.kind.value, t.actor, t.at, t.comment, t.details)
            for t in plan.alert_transitions
        ],
    )
    if notifier is not None:
        # Notifications (issue 17): outbox rows in this same transaction, after the alerts are written.
        ids: dict[TransitionKind, list[str]] = {kind: [] for kind in TransitionKind}
        for transition in plan.alert_transitions:
            ids[transition.kind].append(transition.alert.id)
        await notifier.record_alert_changes(
            conn,
            opened=ids[TransitionKind.OPENED],
            resolved=ids[TransitionKind.RESOLVED],
            acknowledged=ids[TransitionKind.ACKNOWLEDGED],
        )


def _catch_up_predictive(fleet: Fleet) -> None:
    """At start-up: each predictive rule has evaluated its series up to the newest stored reading.

    Outside shared mode a state's `last_ts` is written only along with its other fields (see _persist), so the
    database's is behind; the detectors are rebuilt from the readings up to it (server/service/predictive.py).
    Threshold rules keep no `last_ts`: the series' clock (`Fleet.series_ts`) says what is late for them."""
    if not fleet.predictive_rules:
        return
    for machine_id in fleet.health:
        for rule in fleet.rules.values():
            if rule.kind is RuleKind.THRESHOLD or not rule.applies_to(machine_id):
                continue
            newest = fleet.series_ts.get((machine_id, rule.metric_name))
            key = (rule.id, machine_id)
            state = fleet.state(key)
            if newest is not None and (state.last_ts is None or state.last_ts < newest):
                fleet.states[key] = replace(state, last_ts=newest)


def _advisory_key(tenant_id: str) -> int:
    """A stable signed 64-bit key for pg_advisory_lock, derived from the tenant id."""
    return int.from_bytes(hashlib.blake2b(tenant_id.encode(), digest_size=8).digest(), "big", signed=True)


def group_by_tenant(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """(tenant id, machine id) pairs as machine ids per tenant."""
    grouped: dict[str, list[str]] = defaultdict(list)
    for tenant_id, machine_id in pairs:
        grouped[tenant_id].append(machine_id)
    return grouped

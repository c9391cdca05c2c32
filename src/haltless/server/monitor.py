"""The monitor: alert rules and machine health, kept in memory in step with the database.

Every change goes through the same three steps so memory never runs ahead of the database:
`plan` (pure: readings or a user action in, rows to write and events to publish out), `persist`
(inside the caller's transaction), and `apply` (into memory, only after the commit), then publish.
`guard(tenant)` serialises all of it per tenant (on SQLite, for everyone: it has one writer), so events
of one machine are published in the order the changes happened.

Several server processes (shared mode, with PostgreSQL and the Redis bus): memory is only a cache.
`guard` also holds a PostgreSQL advisory lock per tenant across the whole plan → commit → publish,
and `refresh` reloads the rules, rule states, open alerts and health of the machines involved from
the database before planning. So each reading is evaluated exactly once, by the process that stored
it, against the state the previous change (in any process) committed, and every status change is
committed (and emitted) by exactly one process: a second process finds it already made.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field, replace
from operator import attrgetter

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from haltless.bus import EventBus
from haltless.core import predictive, wire
from haltless.core.health import MachineHealth, derive_status
from haltless.core.models import MachineStatus
from haltless.core.readings import Reading
from haltless.core.rules import (
    MAX_ALERT_MESSAGE_LENGTH,
    AlertCleared,
    AlertOpened,
    Rule,
    RuleKind,
    RuleState,
    evaluate,
    evaluate_quiet,
    resolved_by_user,
)
from haltless.errors import Conflict, NotFound
from haltless.server import predictive as predictive_detectors
from haltless.store import alerts as alert_store
from haltless.store.alerts import AlertState, StoredAlert

log = logging.getLogger("haltless.monitor")

# Fields whose change alters what a rule means: open alerts of the old meaning are resolved.
_SEMANTIC_FIELDS = (
    "metric_name",
    "machine_id",
    "condition",
    "threshold",
    "severity",
    "for_seconds",
    "hysteresis",
    "sensitivity",
    "horizon_seconds",
    "window_readings",
)


def _now_us() -> int:
    return time.time_ns() // 1000


@dataclass(slots=True)
class Plan:
    """What one change writes and publishes; applied to memory only after it is committed."""

    states: dict[tuple[str, str], RuleState] = field(default_factory=dict)
    health: dict[str, MachineHealth] = field(default_factory=dict)
    new_alerts: list[StoredAlert] = field(default_factory=list)
    resolved: list[tuple[str, int, str | None, str]] = field(default_factory=list)  # id, at, by, resolution
    acknowledged: list[tuple[str, int, str]] = field(default_factory=list)  # id, at, by
    status_changes: dict[str, str] = field(default_factory=dict)
    events: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))  # tenant -> events
    # Predictive rules (issue 18): the detectors this plan fed (back into memory on apply), forecast alerts whose
    # prediction moved (id, message, predicted crossing), and the batch's readings per (machine, metric) series.
    detectors: dict[tuple[str, str], predictive.SeriesDetector] = field(default_factory=dict)
    predictions: list[tuple[str, str, int]] = field(default_factory=list)
    series: dict[tuple[str, str], list[Reading]] | None = None


class Monitor:
    """Rule index, rule states and machine health of every tenant served by this process."""

    def __init__(self, engine: AsyncEngine, bus: EventBus, *, offline_after: float, shared: bool = False) -> None:
        self._engine = engine
        self._bus = bus
        self.shared = shared
        self._offline_after_us = int(offline_after * 1_000_000)
        # SQLite has one writer: one lock for everything queues writers here instead of on the file lock.
        # Other databases: one lock per tenant, so tenants do not wait for each other.
        self._single_writer = engine.dialect.name == "sqlite"
        self._global_lock = asyncio.Lock()
        self._tenant_locks: dict[str, asyncio.Lock] = {}
        self._rules: dict[str, Rule] = {}
        self._index: dict[tuple[str, str], list[Rule]] = defaultdict(list)
        self._states: dict[tuple[str, str], RuleState] = {}
        self._health: dict[str, MachineHealth] = {}
        # Predictive rules: their detectors per (rule, machine), and how many such rules each tenant has.
        self._detectors: dict[tuple[str, str], predictive.SeriesDetector] = {}
        self._predictive_rules: dict[str, int] = defaultdict(int)
        self._watcher: asyncio.Task[None] | None = None

    # ---- start-up ---------------------------------------------------------------------------

    async def load(self) -> None:
        """Read rules, rule states, open alerts and machines into memory."""
        async with self._engine.connect() as conn:
            for rule in await alert_store.all_rules(conn):
                self._add_rule(rule)
            self._states = await alert_store.load_rule_states(conn)
            # Outside shared mode `last_ts` is written only along with a state's other fields (see persist):
            # the newest stored reading of each rule's metric is the newest one evaluated.
            for key, newest in (await alert_store.newest_rule_inputs(conn)).items():
                state = self._states.get(key, _FRESH)
                if state.last_ts is None or state.last_ts < newest:
                    self._states[key] = replace(state, last_ts=newest)
            for machine_id, tenant_id, status, maintenance, last_seen in await alert_store.machine_health_rows(conn):
                self._health[machine_id] = MachineHealth(
                    machine_id, tenant_id, MachineStatus(status), maintenance, last_seen
                )
            for alert in await alert_store.open_alerts(conn):
                self._track_open(alert)

    def start(self, tick: float) -> None:
        """Start the background offline detector."""
        self._watcher = asyncio.create_task(self._watch_offline(tick))

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher

    # ---- the rule index -----------------------------------------------------------------------

    def _add_rule(self, rule: Rule) -> None:
        self._rules[rule.id] = rule
        self._index[(rule.tenant_id, rule.metric_name)].append(rule)
        if rule.kind is not RuleKind.THRESHOLD:
            self._predictive_rules[rule.tenant_id] += 1

    def _drop_rule(self, rule_id: str) -> None:
        rule = self._rules.pop(rule_id, None)
        if rule is not None:
            if rule.kind is not RuleKind.THRESHOLD:
                self._predictive_rules[rule.tenant_id] -= 1
            members = self._index[(rule.tenant_id, rule.metric_name)]
            members[:] = [r for r in members if r.id != rule_id]
            if not members:
                del self._index[(rule.tenant_id, rule.metric_name)]

    # ---- planning -------------------------------------------------------------------------------

    def _health_of(self, plan: Plan, machine_id: str) -> MachineHealth | None:
        health = plan.health.get(machine_id)
        if health is None:
            live = self._health.get(machine_id)
            if live is None:
                return None
            health = replace(live, active=dict(live.active))
            plan.health[machine_id] = health
        return health

    def _state_of(self, plan: Plan, key: tuple[str, str]) -> RuleState:
        state = plan.states.get(key)
        if state is None:
            state = self._states.get(key, RuleState())
        return state

    def _restatus(self, plan: Plan, health: MachineHealth, now_us: int) -> None:
        status = derive_status(health, now_us, self._offline_after_us)
        if status is not health.status:
            plan.events[health.tenant_id].append(
                wire.machine_status(health.machine_id, health.status.value, status.value, now_us)
            )
            plan.status_changes[health.machine_id] = status.value
            health.status = status

    def _resolve(
        self, plan: Plan, health: MachineHealth | None, alert_id: str, severity: str, at: int, by: str | None, why: str
    ) -> None:
        plan.resolved.append((alert_id, at, by, why))
        if health is not None:
            health.active.pop(alert_id, None)
            plan.events[health.tenant_id].append(wire.alert_resolved(alert_id, health.machine_id, severity, why, at))

    def plan_readings(self, tenant_id: str, readings: Sequence[Reading], received_at: int) -> Plan:
        """Evaluate stored readings (in measurement order): sensor_update, then alerts, then status changes."""
        plan = Plan()
        events = plan.events[tenant_id]
        ordered = sorted(readings, key=_MEASURED_AT)
        healths: dict[str, MachineHealth | None] = {}
        for machine_id in {reading.machine_id for reading in ordered}:
            health = healths[machine_id] = self._health_of(plan, machine_id)
            if health is not None:
                health.last_seen = received_at
        replay = self._settle_quiet(plan, tenant_id, ordered, healths)
        if replay and self._predictive_rules.get(tenant_id):  # issue 18: detectors take a series' batch at once
            plan.series = predictive_detectors.group_series(ordered)
        sensor_update = wire.sensor_update
        if not replay and not any(h is not None and h.status is MachineStatus.OFFLINE for h in healths.values()):
            # The usual batch: no rule to replay and no machine coming back online, so the events are the
            # readings' updates and nothing else (the loop below would find exactly that, at twice the cost).
            events.extend(wire.sensor_updates(ordered))
            return plan
        for reading in ordered:
            machine_id = reading.machine_id
            events.append(sensor_update(machine_id, reading.metric_name, reading.value, reading.unit, reading.ts))
            health = healths[machine_id]
            if health is None:
                continue
            # A reading can change the status only by ending `offline` or by opening or closing an alert;
            # deriving it for every other reading would be wasted work on the ingest hot path.
            changed = health.status is MachineStatus.OFFLINE
            rules = replay.get((machine_id, reading.metric_name))
            if rules:
                for rule in rules:
                    changed = self._evaluate(plan, rule, health, reading) or changed
            if changed:
                self._restatus(plan, health, received_at)
        return plan

    def _settle_quiet(
        self, plan: Plan, tenant_id: str, ordered: Sequence[Reading], healths: dict[str, MachineHealth | None]
    ) -> dict[tuple[str, str], list[Rule]]:
        """Settle every (machine, metric) whose readings cannot move its rules (core.rules.evaluate_quiet) in
        one step; returns the rules that must see the other series reading by reading.

        Hot path (bench M4): most batches breach nothing, and replaying each reading through each rule
        was the largest part of planning.
        """
        series: dict[tuple[str, str], list[Reading]] = defaultdict(list)
        for reading in ordered:
            series[(reading.machine_id, reading.metric_name)].append(reading)
        replay: dict[tuple[str, str], list[Rule]] = {}
        for (machine_id, metric_name), members in series.items():
            health = healths[machine_id]
            rules = self._index.get((tenant_id, metric_name))
            if health is None or health.maintenance or not rules:
                continue
            applicable = [rule for rule in rules if rule.applies_to(machine_id)]
            values = [reading.value for reading in members]
            # `ordered` is sorted by measurement time (a stable sort), so the newest is the series' last.
            lowest, highest, newest = min(values), max(values), members[-1].ts
            settled = {}
            for rule in applicable:
                key = (rule.id, machine_id)
                if rule.kind is RuleKind.THRESHOLD:
                    state = evaluate_quiet(rule, self._state_of(plan, key), lowest, highest, newest)
                else:  # issue 18: a predictive rule's detector takes the series' batch here, once
                    state = self._settle_predictive(plan, rule, key, members)
                if state is not None:
                    settled[key] = state
            # A settled rule is done with these readings (a predictive one's detector has seen them): only the
            # others see them one by one.
            if len(settled) < len(applicable):
                replay[(machine_id, metric_name)] = [r for r in applicable if (r.id, machine_id) not in settled]
            plan.states.update(settled)
        return replay

    def _evaluate(self, plan: Plan, rule: Rule, health: MachineHealth, reading: Reading) -> bool:
        """Apply one reading to one rule; True when an alert opened or cleared."""
        if rule.kind is not RuleKind.THRESHOLD:
            return self._evaluate_predictive(plan, rule, health, reading)
        key = (rule.id, reading.machine_id)
        state, transition = evaluate(rule, self._state_of(plan, key), reading.value, reading.ts, alert_store.new_id)
        plan.states[key] = state
        if isinstance(transition, AlertOpened):
            alert = StoredAlert(
                id=transition.alert_id,
                tenant_id=rule.tenant_id,
                rule_id=rule.id,
                machine_id=reading.machine_id,
                metric_name=rule.metric_name,
                severity=rule.severity,
                message=rule.render_message(reading.value),
                metric_value=reading.value,
                threshold_value=rule.threshold,
                state=AlertState.ACTIVE,
                created_at=reading.ts,
                acknowledged_at=None,
                acknowledged_by=None,
                resolved_at=None,
                resolved_by=None,
                resolution=None,
            )
            plan.new_alerts.append(alert)
            health.active[alert.id] = alert.severity
            plan.events[rule.tenant_id].append(
                wire.alert(
                    alert.id,
                    alert.machine_id,
                    alert.severity.value,
                    alert.message,
                    alert.metric_value,
                    alert.threshold_value,
                    alert.created_at,
                )
            )
        elif isinstance(transition, AlertCleared):
            self._resolve(plan, health, transition.alert_id, rule.severity.value, transition.ts, None, "cleared")
        return transition is not None

    # ---- predictive rules (issue 18: anomaly and forecast kinds, decided by core/predictive.py) -----------

    async def prepare_predictive(self, conn: AsyncConnection, tenant_id: str, batch: Sequence[Reading]) -> None:
        """Before planning a stored batch: bring the detectors it will feed in step with the database."""
        if not self._predictive_rules.get(tenant_id):
            return
        due = []
        for (machine_id, metric_name), first_ts in predictive_detectors.first_readings(batch).items():
            for rule in self._index.get((tenant_id, metric_name), ()):
                if rule.kind is not RuleKind.THRESHOLD and rule.applies_to(machine_id):
                    due.append((rule, machine_id, first_ts))
        await predictive_detectors.prepare(conn, self._detectors, self._states, due)

    def _detector_of(self, plan: Plan, rule: Rule, key: tuple[str, str]) -> predictive.SeriesDetector:
        detector = plan.detectors.get(key)
        if detector is None:
            # Taken out of memory until the plan is applied: a plan that is never committed leaves no detector
            # behind that saw its readings (the next batch rebuilds it from the database).
            detector = self._detectors.pop(key, None) or predictive.new_detector(rule)
            plan.detectors[key] = detector
        return detector

    def _settle_predictive(
        self, plan: Plan, rule: Rule, key: tuple[str, str], members: list[Reading]
    ) -> RuleState | None:
        """Feed a series' batch to a predictive rule's detector at once; its state when nothing happens, else None."""
        detector = self._detector_of(plan, rule, key)
        return predictive.settle(
            rule, detector, self._state_of(plan, key), [r.ts for r in members], [r.value for r in members]
        )

    def _evaluate_predictive(self, plan: Plan, rule: Rule, health: MachineHealth, reading: Reading) -> bool:
        """Apply one reading to one anomaly or forecast rule; True when an alert opened or cleared."""
        key = (rule.id, reading.machine_id)
        members = plan.series.get((reading.machine_id, reading.metric_name)) if plan.series else None
        state = self._state_of(plan, key)
        detector = self._detector_of(plan, rule, key)
        outcome = predictive.evaluate(
            rule,
            detector,
            state,
            reading.value,
            reading.ts,
            alert_store.new_id,
            unit=reading.unit,
            newest_of_batch=not members or reading.ts >= members[-1].ts,
        )
        plan.states[key] = outcome.state
        transition = outcome.transition
        if isinstance(transition, predictive.PredictiveOpened):
            alert = StoredAlert(
                id=transition.alert_id,
                tenant_id=rule.tenant_id,
                rule_id=rule.id,
                machine_id=reading.machine_id,
                metric_name=rule.metric_name,
                severity=rule.severity,
                message=transition.message[:MAX_ALERT_MESSAGE_LENGTH],
                metric_value=transition.value,
                threshold_value=transition.threshold_value,
                state=AlertState.ACTIVE,
                created_at=transition.ts,
                acknowledged_at=None,
                acknowledged_by=None,
                resolved_at=None,
                resolved_by=None,
                resolution=None,
                predicted_crossing_at=transition.predicted_crossing_us,
            )
            plan.new_alerts.append(alert)
            health.active[alert.id] = alert.severity
            plan.events[rule.tenant_id].append(
                wire.alert(
                    alert.id,
                    alert.machine_id,
                    alert.severity.value,
                    alert.message,
                    alert.metric_value,
                    alert.threshold_value,
                    alert.created_at,
                )
            )
            return True
        if isinstance(transition, predictive.PredictiveUpdated):
            if transition.predicted_crossing_us is not None:
                plan.predictions.append((transition.alert_id, transition.message, transition.predicted_crossing_us))
            plan.events[rule.tenant_id].append(
                wire.alert_updated(
                    transition.alert_id, reading.machine_id, transition.message, transition.predicted_crossing_us
                )
            )
            return False
        if isinstance(transition, AlertCleared):
            self._resolve(plan, health, transition.alert_id, rule.severity.value, transition.ts, None, "cleared")
            return True
        return False

    # ---- persisting and applying ----------------------------------------------------------------

    async def persist(self, conn: AsyncConnection, plan: Plan) -> None:
        """Write a plan inside the caller's transaction."""
        for alert in plan.new_alerts:
            await alert_store.insert_alert(conn, alert)
        for alert_id, at, by, resolution in plan.resolved:
            await alert_store.resolve_alert(conn, alert_id, at=at, by=by, resolution=resolution)
        for alert_id, at, by in plan.acknowledged:
            await alert_store.acknowledge_alert(conn, alert_id, at=at, by=by)
        for alert_id, message, crossing in plan.predictions:
            await alert_store.update_prediction(conn, alert_id, message=message, predicted_crossing_at=crossing)
        await alert_store.save_rule_states(conn, plan.states if self.shared else self._durable_changes(plan.states))
        await alert_store.set_machine_status(conn, plan.status_changes)

    def _durable_changes(self, states: dict[tuple[str, str], RuleState]) -> dict[tuple[str, str], RuleState]:
        """The states whose `breach_since` or `armed` changed: only those must be written.

        Hot path (bench M4): almost every reading moves only `last_ts`, and upserting every touched
        (rule, machine) on every batch cost a fifth of a 500-reading batch. `load` recovers `last_ts` from the
        readings. Shared mode writes every state, because other processes reload them for every change.
        """
        changed = {}
        for key, state in states.items():
            old = self._states.get(key, _FRESH)
            if old.breach_since != state.breach_since or old.armed != state.armed:
                changed[key] = state
        return changed

    def known_machines(self, tenant_id: str, machine_ids: Iterable[str]) -> set[str]:
        """Which of `machine_ids` this process knows as machines of `tenant_id` (from memory, no I/O)."""
        health = self._health
        return {m for m in set(machine_ids) if (h := health.get(m)) is not None and h.tenant_id == tenant_id}

    def apply(self, plan: Plan) -> None:
        """Make a committed plan the in-memory truth."""
        self._states.update(plan.states)
        self._health.update(plan.health)
        self._detectors.update(plan.detectors)

    async def publish(self, plan: Plan) -> None:
        for tenant_id, events in plan.events.items():
            if events:
                await self._bus.publish(tenant_id, events)

    @contextlib.asynccontextmanager
    async def guard(self, tenant_id: str) -> AsyncIterator[AsyncConnection]:
        """Exclusive right to change the tenant's alert and health state until publish is done.

        Yields a connection with no transaction open; run the change in `conn.begin()`, then apply and
        publish before leaving the block.
        """
        lock = self._global_lock
        if not self._single_writer:
            lock = self._tenant_locks.setdefault(tenant_id, asyncio.Lock())
        async with lock, self._engine.connect() as conn:
            if not self.shared:
                yield conn
                return
            key = _advisory_key(tenant_id)
            await conn.execute(select(func.pg_advisory_lock(key)))
            await conn.commit()
            try:
                yield conn
            finally:
                if conn.in_transaction():
                    await conn.rollback()
                await conn.execute(select(func.pg_advisory_unlock(key)))
                await conn.commit()

    async def refresh(self, conn: AsyncConnection, tenant_id: str, machine_ids: Iterable[str] | None) -> None:
        """Shared mode: reload the tenant's rules and the state of `machine_ids` (None: all its machines)."""
        if not self.shared:
            return
        for rule in [rule for rule in self._rules.values() if rule.tenant_id == tenant_id]:
            self._drop_rule(rule.id)
        for rule in await alert_store.rules_of_tenant(conn, tenant_id):
            self._add_rule(rule)
        wanted = None if machine_ids is None else set(machine_ids)
        rows = await alert_store.machine_health_rows(conn, tenant_id=tenant_id, machine_ids=wanted)
        ids = {row[0] for row in rows}
        for machine_id, tenant, status, maintenance, last_seen in rows:
            self._health[machine_id] = MachineHealth(machine_id, tenant, MachineStatus(status), maintenance, last_seen)
        for key in [key for key in self._states if key[1] in ids]:
            del self._states[key]
        self._states.update(await alert_store.load_rule_states(conn, machine_ids=ids))
        for alert in await alert_store.open_alerts(conn, machine_ids=ids):
            self._track_open(alert)

    def _track_open(self, alert: StoredAlert) -> None:
        health = self._health.get(alert.machine_id)
        if health is not None:
            health.active[alert.id] = alert.severity
        if alert.rule_id is not None:
            key = (alert.rule_id, alert.machine_id)
            self._states[key] = replace(self._states.get(key, RuleState()), open_alert_id=alert.id)

    async def _commit(self, conn: AsyncConnection, plan: Plan) -> None:
        async with conn.begin():
            await self.persist(conn, plan)
        self.apply(plan)
        await self.publish(plan)

    # ---- offline detection ------------------------------------------------------------------------

    async def _watch_offline(self, tick: float) -> None:
        while True:
            await asyncio.sleep(tick)
            try:
                await self.check_offline(_now_us())
            except Exception:  # a database hiccup must not stop offline detection for good
                log.exception("offline check failed; retrying")

    async def check_offline(self, now_us: int) -> None:
        """Turn machines whose last reading arrived more than HALTLESS_OFFLINE_AFTER ago offline."""
        deadline = now_us - self._offline_after_us
        if self.shared:
            async with self._engine.connect() as conn:
                due = await alert_store.machines_due_offline(conn, deadline=deadline)
        else:
            due = [
                (h.tenant_id, h.machine_id)
                for h in self._health.values()
                if h.last_seen is not None and h.last_seen <= deadline and h.status not in _QUIET
            ]
        by_tenant: dict[str, list[str]] = defaultdict(list)
        for tenant_id, machine_id in due:
            by_tenant[tenant_id].append(machine_id)
        for tenant_id, machine_ids in by_tenant.items():
            async with self.guard(tenant_id) as conn:
                async with conn.begin():
                    await self.refresh(conn, tenant_id, machine_ids)
                plan = Plan()
                for machine_id in machine_ids:
                    health = self._health_of(plan, machine_id)
                    if health is not None:
                        self._restatus(plan, health, now_us)
                await self._commit(conn, plan)

    # ---- machines -----------------------------------------------------------------------------------

    def machine_added(self, machine_id: str, tenant_id: str) -> None:
        self._health[machine_id] = MachineHealth(machine_id, tenant_id, MachineStatus.OFFLINE)

    def machine_removed(self, machine_id: str) -> None:
        self._health.pop(machine_id, None)
        for key in [key for key in self._states if key[1] == machine_id]:
            del self._states[key]
        for key in [key for key in self._detectors if key[1] == machine_id]:
            del self._detectors[key]
        for rule in [rule for rule in self._rules.values() if rule.machine_id == machine_id]:
            self._drop_rule(rule.id)

    async def set_maintenance(self, tenant_id: str, machine_id: str, maintenance: bool) -> None:
        """Enter or leave maintenance; the status follows and one machine_status event is sent."""
        async with self.guard(tenant_id) as conn:
            async with conn.begin():
                await self.refresh(conn, tenant_id, [machine_id])
                plan = Plan()
                health = self._health_of(plan, machine_id)
                if health is None:
                    raise NotFound("machine not found")
                if health.maintenance == maintenance:
                    return
                health.maintenance = maintenance
                if maintenance:
                    # Suppression also forgets breaches in progress: for_seconds restarts after maintenance.
                    for key, state in self._states.items():
                        if key[1] == machine_id and state.breach_since is not None and state.open_alert_id is None:
                            plan.states[key] = replace(state, breach_since=None)
                self._restatus(plan, health, _now_us())
                await alert_store.set_maintenance(conn, machine_id, maintenance)
                await self.persist(conn, plan)
            self.apply(plan)
            await self.publish(plan)

    # ---- rules ----------------------------------------------------------------------------------------

    async def create_rule(self, rule: Rule) -> None:
        async with self.guard(rule.tenant_id) as conn:
            async with conn.begin():
                await alert_store.insert_rule(conn, rule, _now_us())
            self._add_rule(rule)

    def _close_rule_alerts(self, plan: Plan, rule: Rule, why: str, now_us: int) -> None:
        for (rule_id, machine_id), state in self._states.items():
            if rule_id != rule.id or state.open_alert_id is None:
                continue
            health = self._health_of(plan, machine_id)
            self._resolve(plan, health, state.open_alert_id, rule.severity.value, now_us, None, why)
            if health is not None:
                self._restatus(plan, health, now_us)

    def _forget_rule_states(self, rule_id: str) -> None:
        for key in [key for key in self._states if key[0] == rule_id]:
            del self._states[key]
        for key in [key for key in self._detectors if key[0] == rule_id]:
            del self._detectors[key]

    async def update_rule(self, old: Rule, new: Rule) -> None:
        """Store an edited rule. A change of meaning resolves its open alerts (`rule_changed`, or
        `rule_disabled`) and forgets its pending breaches, so the new rule starts from a clean slate."""
        async with self.guard(old.tenant_id) as conn:
            now = _now_us()
            plan = Plan()
            semantic = any(getattr(old, name) != getattr(new, name) for name in _SEMANTIC_FIELDS)
            disabled = old.enabled and not new.enabled
            reset = semantic or disabled or (new.enabled and not old.enabled)
            async with conn.begin():
                await self.refresh(conn, old.tenant_id, None)
                if reset:
                    self._close_rule_alerts(plan, old, "rule_disabled" if disabled else "rule_changed", now)
                await alert_store.replace_rule(conn, new, now)
                if reset:
                    await alert_store.delete_rule_states(conn, old.id)
                await self.persist(conn, plan)
            self.apply(plan)
            if reset:
                self._forget_rule_states(old.id)
            self._drop_rule(old.id)
            self._add_rule(new)
            await self.publish(plan)

    async def delete_rule(self, rule: Rule) -> None:
        """Delete a rule; its open alerts are resolved with `rule_deleted`."""
        async with self.guard(rule.tenant_id) as conn:
            now = _now_us()
            plan = Plan()
            async with conn.begin():
                await self.refresh(conn, rule.tenant_id, None)
                self._close_rule_alerts(plan, rule, "rule_deleted", now)
                await self.persist(conn, plan)
                await alert_store.delete_rule(conn, rule.id)
            self.apply(plan)
            self._forget_rule_states(rule.id)
            self._drop_rule(rule.id)
            await self.publish(plan)

    # ---- user actions on alerts -------------------------------------------------------------------------

    async def acknowledge(self, tenant_id: str, alert_id: str, user_id: str) -> StoredAlert:
        async with self.guard(tenant_id) as conn:
            async with conn.begin():
                alert = await alert_store.get_alert(conn, tenant_id=tenant_id, alert_id=alert_id)
            if alert is None:
                raise NotFound("alert not found")
            if alert.state == AlertState.RESOLVED:
                raise Conflict("alert is already resolved")
            if alert.state == AlertState.ACKNOWLEDGED:
                return alert
            now = _now_us()
            plan = Plan(acknowledged=[(alert_id, now, user_id)])
            plan.events[tenant_id].append(wire.alert_acknowledged(alert_id, alert.machine_id, user_id, now))
            await self._commit(conn, plan)
            return replace(alert, state=AlertState.ACKNOWLEDGED, acknowledged_at=now, acknowledged_by=user_id)

    async def resolve(self, tenant_id: str, alert_id: str, user_id: str) -> StoredAlert:
        """Resolve by hand; the rule re-arms only after the value has cleared once (no instant re-open)."""
        async with self.guard(tenant_id) as conn:
            async with conn.begin():
                alert = await alert_store.get_alert(conn, tenant_id=tenant_id, alert_id=alert_id)
                if alert is not None:
                    await self.refresh(conn, tenant_id, [alert.machine_id])
            if alert is None:
                raise NotFound("alert not found")
            if alert.state == AlertState.RESOLVED:
                raise Conflict("alert is already resolved")
            now = _now_us()
            plan = Plan()
            health = self._health_of(plan, alert.machine_id)
            self._resolve(plan, health, alert_id, alert.severity.value, now, user_id, "manual")
            if alert.rule_id is not None:
                key = (alert.rule_id, alert.machine_id)
                plan.states[key] = resolved_by_user(self._state_of(plan, key))
            if health is not None:
                self._restatus(plan, health, now)
            await self._commit(conn, plan)
            return replace(alert, state=AlertState.RESOLVED, resolved_at=now, resolved_by=user_id, resolution="manual")


def _advisory_key(tenant_id: str) -> int:
    """A stable signed 64-bit key for pg_advisory_lock, derived from the tenant id."""
    return int.from_bytes(hashlib.blake2b(tenant_id.encode(), digest_size=8).digest(), "big", signed=True)


_QUIET = (MachineStatus.OFFLINE, MachineStatus.MAINTENANCE)
_FRESH = RuleState()
_MEASURED_AT = attrgetter("ts")

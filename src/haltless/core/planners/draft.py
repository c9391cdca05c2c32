"""A plan in the making: what it changes is copied on first touch, the rest is read through to the fleet."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from haltless.core import predictive, wire
from haltless.core.alerts import AlertState, StoredAlert
from haltless.core.fleet import Fleet
from haltless.core.health import MachineHealth, derive_status
from haltless.core.plan import SYSTEM, AlertTransition, Plan, TransitionKind
from haltless.core.predictive import SeriesDetector
from haltless.core.readings import Reading
from haltless.core.rules import Rule, RuleState


class Draft:
    """The fleet as the plan being built would leave it."""

    __slots__ = ("_alerts", "fleet", "plan", "series")

    def __init__(self, fleet: Fleet, plan: Plan) -> None:
        self.fleet = fleet
        self.plan = plan
        self._alerts: dict[str, StoredAlert] = {}  # alerts this plan opened or changed
        # Predictive rules: the batch's readings per (machine, metric) series, in measurement order.
        self.series: dict[tuple[str, str], list[Reading]] | None = None

    def health(self, machine_id: str) -> MachineHealth | None:
        """The machine's health, a copy the plan may change (None: not a machine of the fleet)."""
        health = self.plan.health.get(machine_id)
        if health is None:
            live = self.fleet.health.get(machine_id)
            if live is None:
                return None
            health = replace(live, active=dict(live.active))
            self.plan.health[machine_id] = health
        return health

    def state(self, key: tuple[str, str]) -> RuleState:
        state = self.plan.states.get(key)
        if state is None:
            state = self.fleet.state(key)
        return state

    def detector(self, rule: Rule, key: tuple[str, str]) -> SeriesDetector:
        """The detector of a predictive rule on a machine, for this plan to feed."""
        detector = self.plan.detectors.get(key)
        if detector is None:
            # Taken out of the fleet until the plan is applied: a plan that is never committed leaves no detector
            # behind that saw its readings (the next batch rebuilds it from the database).
            detector = self.fleet.detectors.pop(key, None) or predictive.new_detector(rule)
            self.plan.detectors[key] = detector
        return detector

    def alert(self, alert_id: str) -> StoredAlert | None:
        """An open alert, as this plan leaves it so far."""
        return self._alerts.get(alert_id) or self.fleet.open_alerts.get(alert_id)

    def record(
        self,
        kind: TransitionKind,
        alert: StoredAlert,
        actor: str,
        at: int,
        comment: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """One transition of an alert: the alert after it, persisted with its audit entry
        (server/service/changes.py)."""
        self._alerts[alert.id] = alert
        self.plan.alert_transitions.append(AlertTransition(kind, alert, actor, at, comment, details))

    def restatus(self, health: MachineHealth, now_us: int) -> None:
        """Derive the machine's status again; a change is written and announced."""
        status = derive_status(health, now_us, self.fleet.offline_after_us)
        if status is not health.status:
            self.plan.events.append(wire.machine_status(health.machine_id, health.status.value, status.value, now_us))
            self.plan.status_changes[health.machine_id] = status
            health.status = status

    def resolve(
        self,
        health: MachineHealth | None,
        alert_id: str,
        severity: str,
        at: int,
        actor: str,
        resolution: str,
        alert: StoredAlert | None = None,
        comment: str | None = None,
    ) -> StoredAlert | None:
        """Close an open alert; returns it as closed (None when no such alert is open)."""
        alert = alert or self.alert(alert_id)
        if alert is None:
            return None
        closed = replace(
            alert,
            state=AlertState.RESOLVED,
            resolved_at=at,
            resolved_by=None if actor == SYSTEM else actor,
            resolution=resolution,
        )
        self.record(TransitionKind.RESOLVED, closed, actor, at, comment, {"resolution": resolution})
        if health is not None:
            health.active.pop(alert_id, None)
            # The alert's own severity: an escalation may have raised it above its rule's (`severity`).
            severity = alert.severity.value
            self.plan.events.append(wire.alert_resolved(alert_id, health.machine_id, severity, resolution, at))
        return closed

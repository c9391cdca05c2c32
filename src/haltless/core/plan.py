"""A plan: everything one change writes, remembers and publishes, decided before any of it happens.

Planners (`core/planners/`) build plans from the in-memory state (`core/fleet.py`), an input and `now`; the
server's unit of work (`server/service/changes.py`) persists a plan in one transaction, commits, applies it to the
in-memory state (`Fleet.apply`) and publishes its events, in that order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from haltless.core.alerts import StoredAlert
from haltless.core.health import MachineHealth
from haltless.core.models import MachineStatus
from haltless.core.predictive import SeriesDetector
from haltless.core.readings import Reading
from haltless.core.rules import Rule, RuleState

# The actor of a transition no user made (a reading cleared it, a rule changed, the offline watcher).
SYSTEM = "system"


class TransitionKind(StrEnum):
    """What happened to an alert."""

    # A rule opened it.
    OPENED = "opened"
    # A user acknowledged it.
    ACKNOWLEDGED = "acknowledged"
    # It was closed (see its `resolution`).
    RESOLVED = "resolved"
    # A user shelved (snoozed) it: no reminders or escalation until the shelf ends.
    SHELVED = "shelved"
    # A user took it off the shelf before the shelf ended.
    UNSHELVED = "unshelved"
    # A notification policy escalated it (unacknowledged for the policy's escalate_after).
    ESCALATED = "escalated"
    # Its escalation raised its severity (the policy's escalation_severity).
    SEVERITY_RAISED = "severity_raised"


# The transitions that change what a notification says (the others are audited, not notified).
NOTIFIED_KINDS = (TransitionKind.OPENED, TransitionKind.ACKNOWLEDGED, TransitionKind.RESOLVED)


@dataclass(frozen=True, slots=True)
class AlertTransition:
    """One change of one alert: the alert as it is after the change, who made it, and when."""

    kind: TransitionKind
    alert: StoredAlert
    actor: str  # a user id, or SYSTEM
    at: int  # µs
    comment: str | None = None  # what the actor said (acknowledge, shelve)
    # Kind-specific facts for the audit trail (resolution, severity from/to, shelved until...): JSON values.
    details: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class NewMachine:
    """A machine to register; it is `offline` until its first reading."""

    id: str
    tenant_id: str
    name: str
    location: str | None
    tags: list[str]
    created_at: int


@dataclass(slots=True)
class Plan:
    """What one change of one tenant's state does; nothing of it is true until the unit of work commits it."""

    tenant_id: str
    at: int  # µs: when the change is made
    # Readings to store (already validated and sifted), and the machines whose `last_seen_at` they advance.
    readings: Sequence[Reading] = ()
    reporting: set[str] = field(default_factory=set)
    # (machine id, metric) -> unit: the units these readings are the first to state (issue 19).
    units: dict[tuple[str, str], str] = field(default_factory=dict)
    # (rule id, machine id) -> the state to upsert.
    states: dict[tuple[str, str], RuleState] = field(default_factory=dict)
    # (machine id, metric) -> the newest measurement time among these readings (`Fleet.series_ts`).
    series_ts: dict[tuple[str, str], int] = field(default_factory=dict)
    # Machines whose health changed: the health after the change (copies; the fleet's own are untouched).
    health: dict[str, MachineHealth] = field(default_factory=dict)
    status_changes: dict[str, MachineStatus] = field(default_factory=dict)
    maintenance_changes: dict[str, bool] = field(default_factory=dict)
    alert_transitions: list[AlertTransition] = field(default_factory=list)
    # Open forecast alerts whose prediction moved: (alert id, message, predicted crossing µs).
    predictions: list[tuple[str, str, int]] = field(default_factory=list)
    # Predictive rules: the detectors this plan fed, taken out of the fleet until the plan is applied.
    detectors: dict[tuple[str, str], SeriesDetector] = field(default_factory=dict)
    rules_created: list[Rule] = field(default_factory=list)
    rules_updated: list[Rule] = field(default_factory=list)
    rules_deleted: list[str] = field(default_factory=list)
    # Rules whose (rule, machine) states are all forgotten: the rule starts again from a clean slate.
    rule_states_reset: list[str] = field(default_factory=list)
    machines_added: list[NewMachine] = field(default_factory=list)
    machine_edits: dict[str, dict[str, Any]] = field(default_factory=dict)  # machine id -> name/location/tags
    machines_removed: list[str] = field(default_factory=list)
    # Wire events (core/wire.py), encoded once, published in this order to the tenant's subscribers.
    events: list[str] = field(default_factory=list)

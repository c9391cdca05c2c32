"""Alerts as every layer sees them: their lifecycle, how they end, and one alert's record."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from haltless.core.rules import Severity


class AlertState(StrEnum):
    """Lifecycle of an alert (stored as text)."""

    # Open, nobody has looked at it yet.
    ACTIVE = "active"
    # Open, a user has taken it on.
    ACKNOWLEDGED = "acknowledged"
    # Closed: the value cleared, a user resolved it, or its rule changed.
    RESOLVED = "resolved"


# The states of an alert that is still open.
OPEN_STATES: tuple[AlertState, ...] = (AlertState.ACTIVE, AlertState.ACKNOWLEDGED)


class Resolution(StrEnum):
    """Why an alert was resolved (stored as text, sent in `alert_resolved`)."""

    # The value went back past the threshold by the hysteresis.
    CLEARED = "cleared"
    # A user resolved it.
    MANUAL = "manual"
    # Its rule changed meaning (metric, machine, condition, threshold, severity, for_seconds, hysteresis).
    RULE_CHANGED = "rule_changed"
    # Its rule was disabled.
    RULE_DISABLED = "rule_disabled"
    # Its rule was deleted.
    RULE_DELETED = "rule_deleted"


@dataclass(frozen=True, slots=True)
class StoredAlert:
    """One alert, as stored."""

    id: str
    tenant_id: str
    rule_id: str | None
    machine_id: str
    metric_name: str
    severity: Severity
    message: str
    metric_value: float
    threshold_value: float
    state: AlertState
    created_at: int
    acknowledged_at: int | None
    acknowledged_by: str | None
    resolved_at: int | None
    resolved_by: str | None
    resolution: str | None
    predicted_crossing_at: int | None = None  # forecast alerts: when the trend crosses the threshold
    acknowledge_comment: str | None = None  # what the acknowledging user said
    shelved_until: int | None = None  # µs: reminders and escalation wait until then (None: not shelved)
    flapping: bool = False  # opened while its rule was flapping (core/flapping.py)

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    def shelved_at(self, now_us: int) -> bool:
        """Whether the alert is shelved at `now_us` (its shelf ends by itself at `shelved_until`)."""
        return self.shelved_until is not None and self.shelved_until > now_us

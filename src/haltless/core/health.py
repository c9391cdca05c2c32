"""Machine health: the status derived from maintenance, reading arrival and active alerts."""

from __future__ import annotations

from dataclasses import dataclass, field

from haltless.core.models import MachineStatus
from haltless.core.rules import Severity


@dataclass(slots=True)
class MachineHealth:
    """What status derivation needs to know about one machine."""

    machine_id: str
    tenant_id: str
    status: MachineStatus
    maintenance: bool = False
    last_seen: int | None = None  # arrival time (µs) of the newest reading
    active: dict[str, Severity] = field(default_factory=dict)  # open alert id -> severity


def derive_status(health: MachineHealth, now_us: int, offline_after_us: int) -> MachineStatus:
    """Maintenance wins; then offline (no reading within the window); then the worst active alert."""
    if health.maintenance:
        return MachineStatus.MAINTENANCE
    if health.last_seen is None or now_us - health.last_seen >= offline_after_us:
        return MachineStatus.OFFLINE
    severities = health.active.values()
    if Severity.CRITICAL in severities:
        return MachineStatus.CRITICAL
    if Severity.WARNING in severities:
        return MachineStatus.WARNING
    return MachineStatus.HEALTHY

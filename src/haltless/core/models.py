"""Domain vocabulary shared by every layer: roles, machine statuses, principals."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    """What a user may do; each role includes the ones below it."""

    # Manages users, API keys and alert rules, plus everything an operator can do.
    ADMIN = "admin"
    # Ingests readings and acknowledges alerts, plus everything a viewer can do.
    OPERATOR = "operator"
    # Reads data and opens the dashboard WebSocket.
    VIEWER = "viewer"

    def allows(self, needed: Role) -> bool:
        """True when this role includes `needed`."""
        return _RANK[self] >= _RANK[needed]


_RANK = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}


class MachineStatus(StrEnum):
    """A machine's health, derived from its alerts and the arrival of its readings."""

    # No active alert of warning or critical severity.
    HEALTHY = "healthy"
    # The worst active alert is a warning.
    WARNING = "warning"
    # The worst active alert is critical.
    CRITICAL = "critical"
    # No reading for HALTLESS_OFFLINE_AFTER seconds (and every new machine).
    OFFLINE = "offline"
    # Set by a user; alerts are suppressed.
    MAINTENANCE = "maintenance"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a user (with a role) or an edge agent's API key (ingest only)."""

    tenant_id: str
    subject_id: str
    role: Role | None  # None for an API key
    is_api_key: bool = False
    # A user's access token: the token generation it was issued under (core.accounts).
    token_generation: int = 0

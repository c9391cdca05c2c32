"""I/O-free: how long before each critical alert a forecast alert warned of it, per machine."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class LeadTime:
    machine_id: str
    forecast_message: str
    critical_message: str
    seconds: float  # from the forecast alert to the critical alert (measurement time)


@dataclass(frozen=True, slots=True)
class SeenAlert:
    id: str
    rule_id: str | None
    machine_id: str
    message: str
    created_at_us: int


@dataclass(slots=True)
class LeadTimes:
    """Feed it alerts (in any order, repeatedly); it reports each critical alert of `critical_rules` that a forecast
    alert of `forecast_rules` on the same machine announced earlier, once."""

    forecast_rules: set[str]
    critical_rules: set[str]
    _seen: set[str] = field(default_factory=set)
    _warned: dict[str, SeenAlert] = field(default_factory=dict)  # machine -> earliest unanswered forecast alert

    def observe(self, alerts: Iterable[SeenAlert]) -> list[LeadTime]:
        found = []
        for alert in sorted((a for a in alerts if a.id not in self._seen), key=lambda a: a.created_at_us):
            self._seen.add(alert.id)
            if alert.rule_id in self.forecast_rules:
                self._warned.setdefault(alert.machine_id, alert)
            elif alert.rule_id in self.critical_rules:
                warning = self._warned.pop(alert.machine_id, None)
                if warning is not None and warning.created_at_us <= alert.created_at_us:
                    seconds = (alert.created_at_us - warning.created_at_us) / 1e6
                    found.append(LeadTime(alert.machine_id, warning.message, alert.message, seconds))
        return found

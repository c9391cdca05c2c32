"""What follows an escalation the notification dispatcher committed: the `alert_escalated` event and, when the
policy says so, a raised severity, each as one change of the alert's tenant (core/planners/lifecycle.py)."""

from __future__ import annotations

from collections.abc import Sequence

from haltless.core.planners.lifecycle import plan_escalated
from haltless.core.rules import Severity
from haltless.server.service.changes import Changes
from haltless.server.service.notifier import Escalation


async def apply_escalations(changes: Changes, escalations: Sequence[Escalation]) -> None:
    """One change per escalated alert; an alert resolved meanwhile is left alone."""
    for escalation in escalations:
        target = Severity(escalation.severity) if escalation.severity else None
        async with changes.for_tenant(escalation.tenant_id, refresh=False) as tx:
            alert = tx.fleet.open_alerts.get(escalation.alert_id)
            # Shared mode: another process may hold newer state of the alert's machine (None: of every machine).
            await tx.refresh([alert.machine_id] if alert is not None else None)
            tx.apply(plan_escalated(tx.fleet, escalation.alert_id, escalation.policy_id, target, tx.now_us))

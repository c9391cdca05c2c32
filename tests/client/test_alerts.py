"""Alert rules and alerts through the SDK against a real server: typed results, filters, paging, 409 as Conflict."""

from __future__ import annotations

import uuid

import pytest

from haltless.client import (
    AlertRecord,
    AlertRule,
    AsyncHaltlessClient,
    Conflict,
    HaltlessClient,
    NotFound,
    PermissionDenied,
    Reading,
    ValidationError,
)
from tests.conftest import PASSWORD, RunningServer, Tenant


async def test_alert_rule_crud_with_typed_results(server: RunningServer, tenant: Tenant) -> None:
    machine_id = await tenant.add_machine()
    async with AsyncHaltlessClient(server.base_url, email=tenant.admin_email, password=PASSWORD) as client:
        rule = await client.create_alert_rule(
            "Too hot", "temperature", ">", 85.0, machine_id=machine_id, severity="critical", message="{value} hot"
        )
        assert isinstance(rule, AlertRule)
        assert (rule.name, rule.metric_name, rule.machine_id, rule.condition, rule.threshold) == (
            "Too hot",
            "temperature",
            machine_id,
            ">",
            85.0,
        )
        assert (rule.severity, rule.for_seconds, rule.hysteresis, rule.enabled, rule.message) == (
            "critical",
            0.0,
            0.0,
            True,
            "{value} hot",
        )
        assert rule.created_at.tzinfo is not None

        edited = await client.update_alert_rule(rule.id, threshold=90.0, machine_id=None, message=None)
        assert (edited.threshold, edited.machine_id, edited.message, edited.name) == (90.0, None, None, "Too hot")
        assert edited.updated_at >= rule.updated_at
        assert (await client.update_alert_rule(rule.id, enabled=False)).enabled is False

        other = await client.create_alert_rule("Too cold", "temperature", "<", 5.0)
        assert other.severity == "warning" and other.machine_id is None
        assert [r.id for r in await client.list_alert_rules()] == [rule.id, other.id]
        assert (await client.get_alert_rule(other.id)).name == "Too cold"

        await client.delete_alert_rule(rule.id)
        with pytest.raises(NotFound) as missing:
            await client.get_alert_rule(rule.id)
        assert missing.value.detail == "alert rule not found"
        with pytest.raises(ValidationError) as invalid:
            await client.create_alert_rule("Bad", "temperature", "=>", 1.0)
        assert "condition" in invalid.value.detail
        with pytest.raises(ValidationError, match="machine_id"):
            await client.create_alert_rule("Nowhere", "temperature", ">", 1.0, machine_id=str(uuid.uuid4()))

    viewer = await tenant.add_user("viewer")
    async with AsyncHaltlessClient(server.base_url, token=viewer["access_token"]) as client:
        assert [r.id for r in await client.list_alert_rules()] == [other.id]
        with pytest.raises(PermissionDenied):
            await client.create_alert_rule("Nope", "temperature", ">", 1.0)


def test_breaching_reading_opens_an_alert_that_is_acknowledged_then_resolved(
    server: RunningServer, tenant: Tenant
) -> None:
    with HaltlessClient(server.base_url, email=tenant.admin_email, password=PASSWORD) as client:
        me = client.me()
        machine = client.create_machine("Press 1")
        rule = client.create_alert_rule("Too hot", "temperature", ">", 85.0, severity="critical")
        assert client.list_alerts().items == ()
        assert client.ingest([Reading(machine.id, "temperature", 87.3, "celsius")]).accepted == 1

        page = client.list_alerts(state="open")
        assert page.next_cursor is None and len(page.items) == 1
        alert = page.items[0]
        assert isinstance(alert, AlertRecord)
        assert (alert.rule_id, alert.machine_id, alert.metric_name, alert.severity, alert.state) == (
            rule.id,
            machine.id,
            "temperature",
            "critical",
            "active",
        )
        assert (alert.metric_value, alert.threshold_value, alert.is_open) == (87.3, 85.0, True)
        assert alert.message == "Temperature exceeded threshold"
        assert client.get_alert(alert.id) == alert

        acknowledged = client.acknowledge_alert(alert.id)
        assert (acknowledged.state, acknowledged.acknowledged_by) == ("acknowledged", me.user_id)
        assert acknowledged.acknowledged_at is not None and acknowledged.resolved_at is None
        assert client.acknowledge_alert(alert.id) == acknowledged  # again: a no-op
        assert [a.id for a in client.list_alerts(state="acknowledged").items] == [alert.id]
        assert client.list_alerts(state="active").items == ()

        resolved = client.resolve_alert(alert.id)
        assert (resolved.state, resolved.resolution, resolved.resolved_by) == ("resolved", "manual", me.user_id)
        assert not resolved.is_open
        assert client.list_alerts(state="open").items == ()
        with pytest.raises(Conflict) as twice:
            client.resolve_alert(alert.id)
        assert twice.value.status == 409 and twice.value.detail
        with pytest.raises(Conflict):
            client.acknowledge_alert(alert.id)
        with pytest.raises(NotFound):
            client.get_alert(str(uuid.uuid4()))


async def test_alerts_are_filtered_and_paged_by_cursor(server: RunningServer, tenant: Tenant) -> None:
    machines = [await tenant.add_machine(f"Press {i}") for i in range(5)]
    async with AsyncHaltlessClient(server.base_url, token=tenant.access_token) as client:
        hot = await client.create_alert_rule("Too hot", "temperature", ">", 85.0, severity="critical")
        loud = await client.create_alert_rule("Too loud", "noise", ">", 90.0, severity="info")
        await client.ingest([Reading(m, "temperature", 90.0 + i) for i, m in enumerate(machines)])
        await client.ingest([Reading(machines[0], "noise", 95.0)])

        every = [a async for a in client.iter_alerts(limit=2)]
        assert len(every) == 6 and len({a.id for a in every}) == 6
        assert [a.created_at for a in every] == sorted((a.created_at for a in every), reverse=True)
        first = await client.list_alerts(limit=2)
        assert len(first.items) == 2 and first.next_cursor is not None
        second = await client.list_alerts(limit=2, cursor=first.next_cursor)
        assert [a.id for a in first.items + second.items] == [a.id for a in every[:4]]

        by_rule = [a async for a in client.iter_alerts(rule_id=hot.id, limit=3)]
        assert sorted(a.machine_id for a in by_rule) == sorted(machines)
        assert [a.rule_id for a in (await client.list_alerts(severity="info")).items] == [loud.id]
        on_first = (await client.list_alerts(machine_id=machines[0])).items
        assert sorted(a.metric_name for a in on_first) == ["noise", "temperature"]
        with pytest.raises(ValidationError, match="cursor"):
            await client.list_alerts(cursor="not-a-cursor")
    with HaltlessClient(server.base_url, token=tenant.access_token) as sync_client:
        assert [a.id for a in sync_client.iter_alerts(state="open", limit=4)] == [a.id for a in every]

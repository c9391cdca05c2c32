"""Notification channels and policies (admins), silences (operators), deliveries (viewers). docs/notifications.md"""

from __future__ import annotations

from typing import Annotated, Literal, cast

from fastapi import APIRouter, Query, Response

from haltless.core.notifications import Kind
from haltless.core.readings import normalize_uuid
from haltless.core.timefmt import format_micros
from haltless.errors import InvalidRequest, NotFound
from haltless.server.http.security import Admin, Operator, State, Viewer
from haltless.server.schemas.notifications import (
    AlertChangeOut,
    AlertNotificationStatus,
    ChannelCreate,
    ChannelOut,
    ChannelTestResult,
    ChannelUpdate,
    NotificationAlertOut,
    NotificationOut,
    NotificationPage,
    PolicyCreate,
    PolicyOut,
    PolicyUpdate,
    SilenceCreate,
    SilenceOut,
)
from haltless.server.service import notification_config as config
from haltless.server.service.resource_verbs import parse_id
from haltless.server.state import AppState
from haltless.store import notifications as store

channels_router = APIRouter(prefix="/api/v1/notification-channels", tags=["notifications"])
policies_router = APIRouter(prefix="/api/v1/notification-policies", tags=["notifications"])
silences_router = APIRouter(prefix="/api/v1/silences", tags=["notifications"])
notifications_router = APIRouter(prefix="/api/v1/notifications", tags=["notifications"])
alert_status_router = APIRouter(prefix="/api/v1/alerts", tags=["notifications"])

NOTIFICATIONS_CURSOR = "notifications/1"


def _config(state: AppState) -> config.Config:
    return config.Config(state.engine, state.notifier.clock, state.notifier.box)


# ---- channels (the rules: server/service/notification_config.py, shared with the CLI) --------------------------


@channels_router.post("", status_code=201, response_model=ChannelOut)
async def create_channel(body: ChannelCreate, principal: Admin, state: State) -> ChannelOut:
    """Create a webhook or email channel; its secret or password can be set but is never shown again."""
    return await config.create_channel(_config(state), principal.tenant_id, body)


@channels_router.get("", response_model=list[ChannelOut])
async def list_channels(principal: Admin, state: State) -> list[ChannelOut]:
    return await config.list_channels(_config(state), principal.tenant_id)


@channels_router.get("/{channel_id}", response_model=ChannelOut)
async def get_channel(channel_id: str, principal: Admin, state: State) -> ChannelOut:
    return await config.get_channel(_config(state), principal.tenant_id, channel_id)


@channels_router.patch("/{channel_id}", response_model=ChannelOut)
async def update_channel(channel_id: str, body: ChannelUpdate, principal: Admin, state: State) -> ChannelOut:
    """Rename, or replace the settings of the channel's type (a secret or password left out is kept)."""
    return await config.update_channel(_config(state), principal.tenant_id, channel_id, body)


@channels_router.delete("/{channel_id}", status_code=204, response_class=Response)
async def delete_channel(channel_id: str, principal: Admin, state: State) -> Response:
    """Delete a channel and its deliveries; policies that named it go on with their other channels."""
    await config.delete_channel(_config(state), principal.tenant_id, channel_id)
    return Response(status_code=204)


@channels_router.post("/{channel_id}/test", response_model=ChannelTestResult)
async def test_channel(channel_id: str, principal: Admin, state: State) -> ChannelTestResult:
    """Send a `test` notification now, once, and report how it went."""
    return await config.test_channel(_config(state), principal.tenant_id, channel_id, state.notifier)


# ---- policies -------------------------------------------------------------------------------------------------


@policies_router.post("", status_code=201, response_model=PolicyOut)
async def create_policy(body: PolicyCreate, principal: Admin, state: State) -> PolicyOut:
    """Route matching alert changes to channels; a default policy takes what no other policy matches."""
    return await config.create_policy(_config(state), principal.tenant_id, body)


@policies_router.get("", response_model=list[PolicyOut])
async def list_policies(principal: Admin, state: State) -> list[PolicyOut]:
    return await config.list_policies(_config(state), principal.tenant_id)


@policies_router.get("/{policy_id}", response_model=PolicyOut)
async def get_policy(policy_id: str, principal: Admin, state: State) -> PolicyOut:
    return await config.get_policy(_config(state), principal.tenant_id, policy_id)


@policies_router.patch("/{policy_id}", response_model=PolicyOut)
async def update_policy(policy_id: str, body: PolicyUpdate, principal: Admin, state: State) -> PolicyOut:
    return await config.update_policy(_config(state), principal.tenant_id, policy_id, body)


@policies_router.delete("/{policy_id}", status_code=204, response_class=Response)
async def delete_policy(policy_id: str, principal: Admin, state: State) -> Response:
    """Delete a policy; changes waiting in its groups are dropped."""
    await config.delete_policy(_config(state), principal.tenant_id, policy_id)
    return Response(status_code=204)


# ---- silences -------------------------------------------------------------------------------------------------


@silences_router.post("", status_code=201, response_model=SilenceOut)
async def create_silence(body: SilenceCreate, principal: Operator, state: State) -> SilenceOut:
    """Silence matching alerts from `starts_at` (default now, may be in the future) until `ends_at`."""
    return await config.create_silence(_config(state), principal.tenant_id, body, created_by=principal.subject_id)


@silences_router.get("", response_model=list[SilenceOut])
async def list_silences(principal: Viewer, state: State) -> list[SilenceOut]:
    return await config.list_silences(_config(state), principal.tenant_id)


@silences_router.get("/{silence_id}", response_model=SilenceOut)
async def get_silence(silence_id: str, principal: Viewer, state: State) -> SilenceOut:
    return await config.get_silence(_config(state), principal.tenant_id, silence_id)


@silences_router.post("/{silence_id}/expire", response_model=SilenceOut)
async def expire_silence(silence_id: str, principal: Operator, state: State) -> SilenceOut:
    """End a silence now (a future one never starts); it stays listed with the alerts it silenced."""
    return await config.expire_silence(_config(state), principal.tenant_id, silence_id)


@silences_router.delete("/{silence_id}", status_code=204, response_class=Response)
async def delete_silence(silence_id: str, principal: Operator, state: State) -> Response:
    await config.delete_silence(_config(state), principal.tenant_id, silence_id)
    return Response(status_code=204)


# ---- deliveries -----------------------------------------------------------------------------------------------


def _notification_out(d: store.Delivery) -> NotificationOut:
    return NotificationOut(
        id=d.id,
        channel_id=d.channel_id,
        kind=d.kind,
        state=cast("Literal['pending', 'delivered', 'failed']", d.state),
        attempts=d.attempts,
        next_attempt_at=format_micros(d.next_attempt_at) if d.state == "pending" else None,
        last_error=d.last_error,
        created_at=format_micros(d.created_at),
        delivered_at=format_micros(d.delivered_at) if d.delivered_at is not None else None,
        alerts=[
            NotificationAlertOut(
                alert_id=a.alert_id,
                machine_id=a.machine_id,
                machine_name=a.machine_name,
                metric_name=a.metric_name,
                severity=a.severity,
                message=a.message,
                state=a.state,
            )
            for a in d.alerts
        ],
    )


@notifications_router.get("", response_model=NotificationPage)
async def list_notifications(
    principal: Viewer,
    state: State,
    delivery_state: Annotated[Literal["pending", "delivered", "failed"] | None, Query(alias="state")] = None,
    channel_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> NotificationPage:
    """Notifications of the tenant, newest first, with their delivery state and last error."""
    after = None
    if cursor is not None:
        after = cast("tuple[int, str]", tuple(state.cursors.decode(NOTIFICATIONS_CURSOR, cursor, (int, str))))
    channel = None
    if channel_id is not None:
        channel = normalize_uuid(channel_id)
        if channel is None:
            raise InvalidRequest("channel_id: must be a UUID")
    async with state.engine.connect() as conn:
        items = await store.list_deliveries(
            conn, tenant_id=principal.tenant_id, state=delivery_state, channel_id=channel, after=after, limit=limit + 1
        )
    more = len(items) > limit
    items = items[:limit]
    next_cursor = (
        state.cursors.encode(NOTIFICATIONS_CURSOR, (items[-1].created_at, items[-1].id)) if more and items else None
    )
    return NotificationPage(items=[_notification_out(d) for d in items], next_cursor=next_cursor)


@notifications_router.get("/{notification_id}", response_model=NotificationOut)
async def get_notification(notification_id: str, principal: Viewer, state: State) -> NotificationOut:
    async with state.engine.connect() as conn:
        found = await store.get_delivery(
            conn, tenant_id=principal.tenant_id, delivery_id=parse_id(notification_id, "notification")
        )
    if found is None:
        raise NotFound("notification not found")
    return _notification_out(found)


@alert_status_router.get("/{alert_id}/notification-status", response_model=AlertNotificationStatus)
async def alert_notification_status(alert_id: str, principal: Viewer, state: State) -> AlertNotificationStatus:
    """What became of an alert's changes: routed, silenced (by which silence) or matched by no policy."""
    normalized = parse_id(alert_id, "alert")
    async with state.engine.connect() as conn:
        changes = await store.changes_of_alert(conn, tenant_id=principal.tenant_id, alert_id=normalized)
    if not changes:
        raise NotFound("no notification record for this alert")
    return AlertNotificationStatus(
        alert_id=normalized,
        silenced=any(change_state == "silenced" for _, _, change_state, _ in changes),
        changes=[
            AlertChangeOut(
                kind=Kind(kind),
                at=format_micros(at),
                state=cast("Literal['new', 'routed', 'silenced', 'unrouted']", change_state),
                silence_id=silence_id,
            )
            for kind, at, change_state, silence_id in changes
        ],
    )

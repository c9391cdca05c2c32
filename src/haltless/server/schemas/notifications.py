"""Request and response bodies of notification channels, policies, silences and deliveries."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, StringConstraints

from haltless.core.notifications import GroupBy, Kind, WebhookFormat, url_problem
from haltless.core.rules import Severity
from haltless.server.schemas.base import (
    CleanText,
    CleanTextSchema,
    Email,
    JsonEnum,
    Name,
    NonBlankSchema,
    StrictBody,
    at_most,
)

Text = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500), at_most(500), CleanText, NonBlankSchema
]
Item = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), at_most(200), CleanText, NonBlankSchema
]
# Ids (UUIDs) and short names. The list limits below keep the largest valid body under the 64 KiB request limit
# (server/http/body_guard.py) even with every character JSON-escaped.
Ident = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40), at_most(40), CleanText, NonBlankSchema
]
Short = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64), at_most(64), CleanText, NonBlankSchema
]
Secret = Annotated[str, StringConstraints(min_length=16, max_length=500), CleanText, CleanTextSchema]


def _sendable(url: str) -> str:
    problem = url_problem(url)
    if problem is not None:
        raise ValueError(problem)
    return url


# No whitespace or control character anywhere: a URL is sent as it is stored. And one that parses: "http://["
# matches the pattern, and would fail every delivery.
Url = Annotated[
    str,
    StringConstraints(min_length=8, max_length=2000, pattern=r"^https?://[^\s\x00-\x1f\x7f]+$"),
    AfterValidator(_sendable),
]
Host = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=253), at_most(253), CleanText, NonBlankSchema
]
Timestamp = Annotated[str, StringConstraints(max_length=64), Field(json_schema_extra={"format": "date-time"})]
# A day: longer group waits or intervals are almost always a unit mistake.
MAX_GROUP_SECONDS = 86_400.0


class WebhookConfigIn(StrictBody):
    url: Url
    format: Annotated[WebhookFormat, JsonEnum] = WebhookFormat.HALTLESS
    secret: Secret | None = Field(
        default=None, description="HMAC key of X-Haltless-Signature; write-only. Required on create."
    )


class EmailConfigIn(StrictBody):
    host: Host
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: Item | None = None
    password: Annotated[str, StringConstraints(max_length=500), CleanText, CleanTextSchema] | None = Field(
        default=None, description="SMTP password; write-only"
    )
    from_address: Email
    to_addresses: list[Email] = Field(min_length=1, max_length=10)


class ChannelCreate(StrictBody):
    name: Name
    type: Literal["webhook", "email"]
    webhook: WebhookConfigIn | None = None
    email: EmailConfigIn | None = None


class ChannelUpdate(StrictBody):
    name: Name | None = None
    webhook: WebhookConfigIn | None = Field(default=None, description="Replaces the settings; omit secret to keep it")
    email: EmailConfigIn | None = Field(default=None, description="Replaces the settings; omit password to keep it")


class WebhookConfigOut(BaseModel):
    url: str
    format: WebhookFormat
    has_secret: bool


class EmailConfigOut(BaseModel):
    host: str
    port: int
    security: str
    username: str | None
    from_address: str
    to_addresses: list[str]
    has_password: bool


class ChannelOut(BaseModel):
    id: str
    name: str
    type: str
    webhook: WebhookConfigOut | None
    email: EmailConfigOut | None
    created_at: str
    updated_at: str


class ChannelTestResult(BaseModel):
    ok: bool
    error: str | None


class MatchersIn(StrictBody):
    machine_ids: list[Ident] = Field(default_factory=list, max_length=50)
    tags: list[Short] = Field(default_factory=list, max_length=20)
    rule_ids: list[Ident] = Field(default_factory=list, max_length=50)
    severities: list[Annotated[Severity, JsonEnum]] = Field(default_factory=list, max_length=3)
    metric_names: list[Short] = Field(default_factory=list, max_length=20)


class PolicyMatchersIn(MatchersIn):
    kinds: list[Literal["firing", "resolved", "acknowledged"]] = Field(default_factory=list, max_length=3)


class MatchersOut(BaseModel):
    machine_ids: list[str]
    tags: list[str]
    rule_ids: list[str]
    severities: list[str]
    metric_names: list[str]


class PolicyMatchersOut(MatchersOut):
    kinds: list[str]


class PolicyCreate(StrictBody):
    name: Name
    matchers: PolicyMatchersIn = Field(default_factory=PolicyMatchersIn)
    channel_ids: list[Ident] = Field(min_length=1, max_length=20)
    is_default: bool = False
    group_by: Annotated[GroupBy, JsonEnum] = GroupBy.RULE
    group_wait: float = Field(default=30.0, ge=0, le=MAX_GROUP_SECONDS)
    group_interval: float = Field(default=300.0, ge=0, le=MAX_GROUP_SECONDS)
    position: int = Field(default=0, ge=0, le=10_000)
    repeat_interval: float | None = Field(
        default=None, ge=60, le=7 * MAX_GROUP_SECONDS, description="Remind of alerts still firing, unacknowledged"
    )
    escalate_after: float | None = Field(
        default=None, ge=0, le=7 * MAX_GROUP_SECONDS, description="Unacknowledged this long: escalation channels"
    )
    escalation_channel_ids: list[Ident] = Field(default_factory=list, max_length=20)
    escalation_severity: Annotated[Severity, JsonEnum] | None = Field(
        default=None, description="Raise an escalated alert to this severity (never lowers it); null: unchanged"
    )


class PolicyUpdate(StrictBody):
    name: Name | None = None
    matchers: PolicyMatchersIn | None = None
    channel_ids: list[Ident] | None = Field(default=None, min_length=1, max_length=20)
    is_default: bool | None = None
    group_by: Annotated[GroupBy, JsonEnum] | None = None
    group_wait: float | None = Field(default=None, ge=0, le=MAX_GROUP_SECONDS)
    group_interval: float | None = Field(default=None, ge=0, le=MAX_GROUP_SECONDS)
    position: int | None = Field(default=None, ge=0, le=10_000)
    repeat_interval: float | None = Field(default=None, ge=60, le=7 * MAX_GROUP_SECONDS, description="null: none")
    escalate_after: float | None = Field(default=None, ge=0, le=7 * MAX_GROUP_SECONDS, description="null: none")
    escalation_channel_ids: list[Ident] | None = Field(default=None, max_length=20)
    escalation_severity: Annotated[Severity, JsonEnum] | None = Field(default=None, description="null: unchanged")


class PolicyOut(BaseModel):
    id: str
    name: str
    matchers: PolicyMatchersOut
    channel_ids: list[str]
    is_default: bool
    group_by: GroupBy
    group_wait: float
    group_interval: float
    position: int
    repeat_interval: float | None
    escalate_after: float | None
    escalation_channel_ids: list[str]
    escalation_severity: Severity | None = None
    created_at: str
    updated_at: str


class SilenceCreate(StrictBody):
    matchers: MatchersIn
    starts_at: Timestamp | None = Field(
        default=None, description="ISO 8601 with a zone; default now. May lie in the future."
    )
    ends_at: Timestamp
    comment: Text


class SilenceOut(BaseModel):
    id: str
    matchers: MatchersOut
    starts_at: str
    ends_at: str
    comment: str
    created_by: str
    created_at: str
    active: bool
    silenced_alert_ids: list[str]


class NotificationAlertOut(BaseModel):
    alert_id: str
    machine_id: str
    machine_name: str
    metric_name: str
    severity: str
    message: str
    state: str


class NotificationOut(BaseModel):
    id: str
    channel_id: str
    kind: Kind
    state: Literal["pending", "delivered", "failed"]
    attempts: int
    next_attempt_at: str | None
    last_error: str | None
    created_at: str
    delivered_at: str | None
    alerts: list[NotificationAlertOut]


class NotificationPage(BaseModel):
    items: list[NotificationOut]
    next_cursor: str | None


class AlertChangeOut(BaseModel):
    kind: Kind
    at: str
    # new: not routed yet; routed: sent or waiting in a group; silenced; unrouted: no policy matched.
    state: Literal["new", "routed", "silenced", "unrouted"]
    silence_id: str | None


class AlertNotificationStatus(BaseModel):
    alert_id: str
    silenced: bool
    changes: list[AlertChangeOut]

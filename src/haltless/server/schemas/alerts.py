"""Request and response bodies of the alert rules and alerts API."""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints, field_validator
from pydantic.json_schema import SkipJsonSchema

from haltless.core.anomaly import Sensitivity
from haltless.core.flapping import DEFAULT_FLAP_THRESHOLD, DEFAULT_FLAP_WINDOW_SECONDS
from haltless.core.forecast import MAX_WINDOW_READINGS, MIN_READINGS
from haltless.core.names import MAX_METRIC_NAME_LENGTH, METRIC_NAME_PATTERN
from haltless.core.rules import Condition, RuleKind, Severity, message_template_error
from haltless.server.schemas.base import CleanText, CleanTextSchema, JsonEnum, NonBlankSchema, StrictBody, at_most

RuleName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), at_most(200), CleanText, NonBlankSchema
]
Message = Annotated[str, StringConstraints(max_length=500), CleanText, CleanTextSchema]
# The metric-name rule of ingest and history queries (core/names.py), written as a pattern for the OpenAPI schema.
MetricName = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_METRIC_NAME_LENGTH, pattern=METRIC_NAME_PATTERN)
]
# A day is long enough for any "must last" window; longer ones are almost always a unit mistake.
MAX_FOR_SECONDS = 86_400.0
# A forecast looks at most 30 days ahead; past that a straight line through recent readings says nothing.
MAX_HORIZON_SECONDS = 30 * 86_400.0
_KIND = "threshold (default), anomaly or forecast; fixed at creation (docs/alerts.md)"
_SENSITIVITY = "anomaly rules: low, medium (default) or high"
_HORIZON = "forecast rules (required): alert when the trend is predicted to cross the threshold within this many s"
_FLAP = "flap detection: more than this many alerts within flap_window_seconds make the next one flapping; null: off"
_FLAP_WINDOW = "flap detection window (seconds)"
_WINDOW = f"forecast rules: readings the trend is fitted to, {MIN_READINGS}–{MAX_WINDOW_READINGS} (default 128)"


def _finite(value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


def _template(value: str | None) -> str | None:
    if value is not None:
        error = message_template_error(value)
        if error:
            raise ValueError(error)
    return value


class AlertRuleCreate(StrictBody):
    name: RuleName
    metric_name: MetricName
    machine_id: str | None = Field(default=None, description="null: every machine of the tenant")
    kind: Annotated[RuleKind, JsonEnum] = Field(default=RuleKind.THRESHOLD, description=_KIND)
    condition: Annotated[Condition, JsonEnum] | None = Field(default=None, description="threshold and forecast rules")
    threshold: float | None = Field(default=None, description="threshold and forecast rules")
    sensitivity: Annotated[Sensitivity, JsonEnum] | None = Field(default=None, description=_SENSITIVITY)
    horizon_seconds: float | None = Field(default=None, gt=0.0, le=MAX_HORIZON_SECONDS, description=_HORIZON)
    window_readings: int | None = Field(default=None, ge=MIN_READINGS, le=MAX_WINDOW_READINGS, description=_WINDOW)
    severity: Annotated[Severity, JsonEnum] = Severity.WARNING
    for_seconds: float = Field(default=0.0, ge=0.0, le=MAX_FOR_SECONDS)
    hysteresis: float = Field(default=0.0, ge=0.0)
    enabled: bool = True
    message: Message | None = Field(
        default=None,
        description="Template; placeholders {metric_name} {value} {threshold} {condition} {rule_name} {severity}",
    )
    flap_threshold: int | None = Field(default=DEFAULT_FLAP_THRESHOLD, ge=1, le=1000, description=_FLAP)
    flap_window_seconds: float = Field(
        default=DEFAULT_FLAP_WINDOW_SECONDS, gt=0.0, le=MAX_FOR_SECONDS, description=_FLAP_WINDOW
    )

    _check_threshold = field_validator("threshold", "hysteresis", "for_seconds", "horizon_seconds")(_finite)
    _check_message = field_validator("message")(_template)


class AlertRuleUpdate(StrictBody):
    """Only the fields sent change. `machine_id` and `message` take null (every machine; the default message);
    the others may be left out but not set to null (`SkipJsonSchema[None]`: the schema says so)."""

    name: RuleName | SkipJsonSchema[None] = None
    metric_name: MetricName | SkipJsonSchema[None] = None
    machine_id: str | None = None
    kind: Annotated[RuleKind, JsonEnum] | SkipJsonSchema[None] = Field(default=None, description="cannot change")
    condition: Annotated[Condition, JsonEnum] | SkipJsonSchema[None] = None
    threshold: float | SkipJsonSchema[None] = None
    sensitivity: Annotated[Sensitivity, JsonEnum] | None = Field(default=None, description=_SENSITIVITY)
    horizon_seconds: (
        Annotated[float, Field(gt=0.0, le=MAX_HORIZON_SECONDS, description=_HORIZON)] | SkipJsonSchema[None]
    ) = None
    window_readings: int | None = Field(default=None, ge=MIN_READINGS, le=MAX_WINDOW_READINGS, description=_WINDOW)
    severity: Annotated[Severity, JsonEnum] | SkipJsonSchema[None] = None
    for_seconds: Annotated[float, Field(ge=0.0, le=MAX_FOR_SECONDS)] | SkipJsonSchema[None] = None
    hysteresis: Annotated[float, Field(ge=0.0)] | SkipJsonSchema[None] = None
    enabled: bool | SkipJsonSchema[None] = None
    message: Message | None = None
    flap_threshold: int | None = Field(default=None, ge=1, le=1000, description=_FLAP)
    flap_window_seconds: Annotated[float, Field(gt=0.0, le=MAX_FOR_SECONDS)] | SkipJsonSchema[None] = None

    _check_threshold = field_validator("threshold", "hysteresis", "for_seconds", "horizon_seconds")(_finite)
    _check_message = field_validator("message")(_template)


class AlertRuleOut(BaseModel):
    id: str
    name: str
    metric_name: str
    machine_id: str | None
    kind: RuleKind
    condition: Condition | None = Field(description="null for anomaly rules")
    threshold: float | None = Field(description="null for anomaly rules")
    sensitivity: Sensitivity | None = Field(description="anomaly rules; null for other kinds")
    horizon_seconds: float | None = Field(description="forecast rules; null for other kinds")
    window_readings: int | None = Field(description="forecast rules; null for other kinds (or the default 128)")
    severity: Severity
    for_seconds: float
    hysteresis: float
    enabled: bool
    message: str | None
    flap_threshold: int | None = Field(default=None, description=_FLAP)
    flap_window_seconds: float = Field(default=DEFAULT_FLAP_WINDOW_SECONDS, description=_FLAP_WINDOW)
    created_at: str
    updated_at: str


class AlertOut(BaseModel):
    id: str
    rule_id: str | None
    machine_id: str
    metric_name: str
    severity: Severity
    message: str
    metric_value: float
    threshold_value: float
    state: str
    created_at: str
    acknowledged_at: str | None
    acknowledged_by: str | None
    resolved_at: str | None
    resolved_by: str | None
    resolution: str | None
    predicted_crossing_at: str | None = Field(
        default=None, description="forecast alerts: when the trend is predicted to cross the threshold"
    )
    flapping: bool = Field(default=False, description="opened while its rule was flapping (docs/alerts.md)")
    # Extensions: the emails of those users (null when unknown here, or the user was deleted); in lists.
    acknowledged_by_email: str | None = None
    resolved_by_email: str | None = None
    acknowledge_comment: str | None = Field(default=None, description="what the acknowledging user said")
    shelved_until: str | None = Field(
        default=None, description="shelved (no reminders or escalation) until then; null: not shelved"
    )


# A comment on an alert transition: one line of text (no control characters), as people type it.
Comment = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=1000),
    at_most(1000),
    CleanText,
    NonBlankSchema,
]
# The longest shelf: a week; longer is almost always a unit mistake (and a silence is the tool for it).
MAX_SHELVE_SECONDS = 7 * 86_400


class AlertActionIn(StrictBody):
    """The optional body of acknowledge, resolve and unshelve."""

    comment: Comment | None = Field(default=None, description="why; kept in the alert's history")


class AlertShelveIn(StrictBody):
    duration_seconds: float = Field(gt=0, le=MAX_SHELVE_SECONDS, description="how long; at most a week")
    comment: Comment | None = Field(default=None, description="why; kept in the alert's history")


class AlertHistoryEntryOut(BaseModel):
    kind: str = Field(
        description="opened, acknowledged, resolved, shelved, unshelved, escalated or severity_raised (more may come)"
    )
    actor: str = Field(description='a user id, or "system"')
    actor_email: str | None = Field(description="the user's email; null for the system or a deleted user")
    at: str
    comment: str | None
    details: dict[str, object] = Field(description="kind-specific: resolution, from/to severity, until, policy_id")


class AlertPage(BaseModel):
    items: list[AlertOut]
    next_cursor: str | None

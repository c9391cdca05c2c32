"""Request and response bodies of the alert rules and alerts API."""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints, field_validator

from haltless.core.names import MAX_METRIC_NAME_LENGTH, METRIC_NAME_PATTERN
from haltless.core.rules import Condition, Severity, message_template_error
from haltless.server.schemas import CleanText, JsonEnum, StrictBody

RuleName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), CleanText]
Message = Annotated[str, StringConstraints(max_length=500), CleanText]
# The metric-name rule of ingest and history queries (core/names.py), written as a pattern for the OpenAPI schema.
MetricName = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_METRIC_NAME_LENGTH, pattern=METRIC_NAME_PATTERN)
]
# A day is long enough for any "must last" window; longer ones are almost always a unit mistake.
MAX_FOR_SECONDS = 86_400.0


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
    condition: Annotated[Condition, JsonEnum]
    threshold: float
    severity: Annotated[Severity, JsonEnum] = Severity.WARNING
    for_seconds: float = Field(default=0.0, ge=0.0, le=MAX_FOR_SECONDS)
    hysteresis: float = Field(default=0.0, ge=0.0)
    enabled: bool = True
    message: Message | None = Field(
        default=None,
        description="Template; placeholders {metric_name} {value} {threshold} {condition} {rule_name} {severity}",
    )

    _check_threshold = field_validator("threshold", "hysteresis", "for_seconds")(_finite)
    _check_message = field_validator("message")(_template)


class AlertRuleUpdate(StrictBody):
    name: RuleName | None = None
    metric_name: MetricName | None = None
    machine_id: str | None = None
    condition: Annotated[Condition, JsonEnum] | None = None
    threshold: float | None = None
    severity: Annotated[Severity, JsonEnum] | None = None
    for_seconds: float | None = Field(default=None, ge=0.0, le=MAX_FOR_SECONDS)
    hysteresis: float | None = Field(default=None, ge=0.0)
    enabled: bool | None = None
    message: Message | None = None

    _check_threshold = field_validator("threshold", "hysteresis", "for_seconds")(_finite)
    _check_message = field_validator("message")(_template)


class AlertRuleOut(BaseModel):
    id: str
    name: str
    metric_name: str
    machine_id: str | None
    condition: Condition
    threshold: float
    severity: Severity
    for_seconds: float
    hysteresis: float
    enabled: bool
    message: str | None
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
    # Extensions: the emails of those users (null when unknown here, or the user was deleted); in lists.
    acknowledged_by_email: str | None = None
    resolved_by_email: str | None = None


class AlertPage(BaseModel):
    items: list[AlertOut]
    next_cursor: str | None

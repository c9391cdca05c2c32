"""Request and response bodies of the machines API."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from haltless.core.models import MachineStatus
from haltless.server.schemas.base import (
    Location,
    Name,
    StrictBody,
    Tag,
)


class MachineCreate(StrictBody):
    name: Name
    location: Location | None = None
    tags: Annotated[list[Tag], Field(max_length=50)] = Field(default_factory=list)


class MachineUpdate(StrictBody):
    name: Name | None = None
    location: Location | None = None
    tags: Annotated[list[Tag], Field(max_length=50)] | None = None
    maintenance: bool | None = Field(
        default=None, description="true puts the machine in maintenance (status `maintenance`, alerts suppressed)"
    )


class MachineOut(BaseModel):
    id: str
    name: str
    location: str | None
    tags: list[str]
    status: MachineStatus
    maintenance: bool
    last_seen_at: str | None
    created_at: str


class MachinePage(BaseModel):
    items: list[MachineOut]
    total: int
    limit: int
    offset: int


class LatestReading(BaseModel):
    metric_name: str
    value: float
    unit: str
    timestamp: str
    received_at: str


class MachineLatest(BaseModel):
    machine_id: str
    readings: list[LatestReading]

"""Request and response bodies of the users API."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from haltless.core.models import Role
from haltless.server.schemas.base import (
    Email,
    JsonEnum,
    Password,
    StrictBody,
)


class UserCreate(StrictBody):
    email: Email
    password: Password
    role: Annotated[Role, JsonEnum] = Role.VIEWER


class UserUpdate(StrictBody):
    role: Annotated[Role, JsonEnum] | None = Field(
        default=None, description="A new role; the user's access tokens are refused from now on"
    )
    disabled: bool | None = Field(
        default=None, description="true: no login, every session ends, open dashboards close (4004); false: enable"
    )
    password: Password | None = Field(default=None, description="A new password; every session of the user ends")


class UserOut(BaseModel):
    id: str
    tenant_id: str
    email: str
    role: Role
    disabled: bool
    created_at: str

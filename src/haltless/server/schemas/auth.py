"""Request and response bodies of the auth API."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from haltless.core.models import Role
from haltless.server.schemas.base import (
    CleanText,
    CleanTextSchema,
    Password,
    StrictBody,
)


class LoginRequest(StrictBody):
    email: Annotated[str, StringConstraints(min_length=1, max_length=320), CleanText, CleanTextSchema]
    password: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    tenant_id: Annotated[str, StringConstraints(min_length=1, max_length=64), CleanText, CleanTextSchema] | None = (
        Field(
            default=None,
            description="Only needed when the same email and password belong to users of several tenants (409).",
        )
    )


class PasswordChange(StrictBody):
    current_password: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    new_password: Password


class RefreshRequest(StrictBody):
    refresh_token: Annotated[str, StringConstraints(min_length=1, max_length=4096), CleanText, CleanTextSchema]


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int


class Me(BaseModel):
    user_id: str
    tenant_id: str
    email: str
    role: Role

"""Request and response bodies of the api keys API."""

from __future__ import annotations

from pydantic import BaseModel, Field

from haltless.server.schemas.base import (
    Name,
    StrictBody,
)


class ApiKeyCreate(StrictBody):
    name: Name


class ApiKeyOut(BaseModel):
    id: str
    name: str
    prefix: str
    created_at: str
    revoked_at: str | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The secret key. It is shown only in this response.")

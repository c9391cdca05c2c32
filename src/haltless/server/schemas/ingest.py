"""Request and response bodies of the ingest API."""

from __future__ import annotations

from pydantic import BaseModel


class IngestRejection(BaseModel):
    index: int
    detail: str


class IngestResponse(BaseModel):
    accepted: int
    duplicates: int
    rejected: list[IngestRejection]

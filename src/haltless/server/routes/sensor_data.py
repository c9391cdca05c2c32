"""`POST /api/v1/sensor-data`: batch ingestion with per-item outcomes."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from haltless.core.readings import MAX_INGEST_BODY_BYTES
from haltless.errors import InvalidRequest, PayloadTooLarge
from haltless.server.schemas import IngestResponse
from haltless.server.security import Ingester, State
from haltless.server.state import now_micros

router = APIRouter(prefix="/api/v1/sensor-data", tags=["sensor data"])

_TOO_LARGE = f"request body over {MAX_INGEST_BODY_BYTES // (1024 * 1024)} MiB; split the batch"


async def _read_body(request: Request) -> bytes:
    """The body, refused as soon as it is known to exceed the limit (never buffered past it)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > MAX_INGEST_BODY_BYTES:
                raise PayloadTooLarge(_TOO_LARGE)
        except ValueError:
            raise InvalidRequest("invalid Content-Length header") from None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_INGEST_BODY_BYTES:
            raise PayloadTooLarge(_TOO_LARGE)
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "",
    status_code=202,
    response_model=IngestResponse,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["readings"],
                        "properties": {
                            "readings": {
                                "type": "array",
                                "maxItems": 10000,
                                "items": {
                                    "type": "object",
                                    "required": ["machine_id", "metric_name", "value"],
                                    "properties": {
                                        "machine_id": {"type": "string", "format": "uuid"},
                                        "metric_name": {"type": "string", "maxLength": 64},
                                        "value": {"type": "number"},
                                        "unit": {"type": "string", "maxLength": 32},
                                        "timestamp": {"type": "string", "format": "date-time"},
                                        "reading_id": {"type": "string", "maxLength": 128},
                                    },
                                },
                            }
                        },
                    }
                }
            },
        }
    },
)
async def ingest(request: Request, principal: Ingester, state: State) -> Response:
    """Store readings; each item is accepted, counted as a duplicate (seen `reading_id`), or rejected."""
    received = now_micros()
    body = await _read_body(request)
    result = await state.pipeline.ingest_body(principal.tenant_id, body, received)
    return Response(orjson.dumps(result.as_json()), status_code=202, media_type="application/json")

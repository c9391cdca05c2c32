"""`POST /api/v1/sensor-data`: batch ingestion with per-item outcomes."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Receive, Scope, Send

from haltless.core.models import Principal
from haltless.core.readings import ingest_body_schema
from haltless.errors import HaltlessError
from haltless.server.http.errors import error_response, http_error_response, unexpected_error_response
from haltless.server.http.security import INGEST_ROLE, Ingester, State, authorize
from haltless.server.schemas.ingest import IngestResponse
from haltless.server.state import AppState, app_state

INGEST_PATH = "/api/v1/sensor-data"
router = APIRouter(prefix=INGEST_PATH, tags=["sensor data"])

# The body as /openapi.json states it, generated from the types core/readings.py decodes with (one place for
# the limits). The batch is refused whole (422) only for its envelope; each reading is checked on its own and,
# when invalid, listed in `rejected` of a 202 beside the accepted ones (tests/contract/schemathesis.toml).
INGEST_BODY_SCHEMA = ingest_body_schema()


@router.post(
    "",
    status_code=202,
    response_model=IngestResponse,
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": INGEST_BODY_SCHEMA}}}},
)
async def ingest(request: Request, principal: Ingester, state: State) -> Response:
    """Store readings; each item is accepted, counted as a duplicate (seen `reading_id`), or rejected."""
    return await ingest_response(request, principal, state)


async def ingest_response(request: Request, principal: Principal, state: AppState) -> Response:
    """The work of `POST /api/v1/sensor-data` once the caller is known, for the route and the fast path."""
    received = state.clock.now_us()
    # Bounded by BodyGuard (MAX_INGEST_BODY_BYTES), which also authenticated the caller before this read.
    body = await request.body()
    result = await state.pipeline.ingest_body(principal.tenant_id, body, received)
    return Response(orjson.dumps(result.as_json()), status_code=202, media_type="application/json")


async def serve_ingest(scope: Scope, receive: Receive, send: Send) -> None:
    """`POST /api/v1/sensor-data` as a bare ASGI app, for `HaltlessAPI`'s fast path (behind a `BodyGuard`).

    Hot path (bench M4): FastAPI's middleware stack, router and dependency solving cost ~1 ms of a
    500-reading batch's ~7 ms on the event loop. This does what the route above does, with the same
    authorization (`authorize`), the same work (`ingest_response`) and the same error bodies (`errors.py`).
    """
    request = Request(scope, receive)
    state = app_state(request)
    try:
        principal = await authorize(request, state, INGEST_ROLE, allow_api_key=True)
        response = await ingest_response(request, principal, state)
    except HaltlessError as exc:
        response = error_response(exc)
    except StarletteHTTPException as exc:  # body_guard.BodyTooLarge
        response = http_error_response(exc)
    except Exception:
        response = unexpected_error_response(request)
    await response(scope, receive, send)

"""`GET /api/v1/sensor-data` (raw pages or buckets) and `GET /api/v1/sensor-data/export` (streamed CSV)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field

from haltless.core.history import (
    BUCKET_CSV_HEADER,
    DEFAULT_LIMIT,
    MAX_BUCKETS,
    MAX_LIMIT,
    RAW_CSV_HEADER,
    BucketPoint,
    Cursor,
    HistoryQuery,
    RawPoint,
    bucket_csv_lines,
    encode_cursor,
    format_interval,
    raw_csv_lines,
    resolve_query,
)
from haltless.core.models import Principal
from haltless.core.readings import normalize_uuid
from haltless.core.timefmt import format_micros
from haltless.server.http.security import State, Viewer
from haltless.server.state import AppState
from haltless.store import history, machines

router = APIRouter(prefix="/api/v1/sensor-data", tags=["sensor data"])


class RawItem(BaseModel):
    metric_name: str
    timestamp: str
    value: float
    unit: str


class BucketItem(BaseModel):
    metric_name: str
    timestamp: str = Field(description="Start of the bucket, aligned to the interval in UTC epoch time.")
    avg: float
    min: float
    max: float
    count: int
    last: float = Field(description="Value of the latest measurement in the bucket.")


class HistoryPage(BaseModel):
    machine_id: str
    metric_names: list[str]
    start: str
    end: str
    interval: str | None = Field(description="Bucket size (e.g. `1m`), or null for raw points.")
    items: list[RawItem] | list[BucketItem]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next raw page; null on the last page.")


MachineId = Annotated[str, Query(description="The machine (UUID).")]
MetricNames = Annotated[
    list[str], Query(description="One or more metrics: repeat the parameter and/or separate names with commas.")
]
Start = Annotated[str | None, Query(description="ISO 8601 with Z or an offset, inclusive; default end - 1h.")]
End = Annotated[str | None, Query(description="ISO 8601 with Z or an offset, exclusive; default now.")]
Interval = Annotated[str | None, Query(description="Bucket size: a whole number and s, m, h or d (10s, 1m, 1h, 1d).")]
MaxPoints = Annotated[
    int | None,
    Query(ge=1, le=MAX_BUCKETS, description="Pick a nice interval giving at most this many points per metric."),
]


async def _check_machine(state: AppState, tenant_id: str, machine_id: str) -> str:
    async with state.engine.connect() as conn:
        return (await machines.of_tenant(conn, tenant_id=tenant_id, machine_id=machine_id)).id


def _raw_item(point: RawPoint) -> dict[str, Any]:
    metric_name, ts, value, unit, _ = point
    return {"metric_name": metric_name, "timestamp": format_micros(ts), "value": value, "unit": unit}


def _bucket_item(point: BucketPoint) -> dict[str, Any]:
    return {
        "metric_name": point.metric_name,
        "timestamp": format_micros(point.ts),
        "avg": point.avg,
        "min": point.min,
        "max": point.max,
        "count": point.count,
        "last": point.last,
    }


async def _resolve(
    state: AppState,
    principal: Principal,
    machine_id: str,
    metric_names: list[str],
    start: str | None,
    end: str | None,
    interval: str | None,
    max_points: int | None,
    *,
    limit: int,
    cursor: str | None = None,
    export: bool = False,
) -> HistoryQuery:
    """The checked query of both endpoints: bad parameters are 422, another tenant's machine 404."""
    query = resolve_query(
        machine_id=normalize_uuid(machine_id) or machine_id,
        metric_names=metric_names,
        start=start,
        end=end,
        interval=interval,
        max_points=max_points,
        limit=limit,
        cursor=cursor,
        cursors=state.cursors,
        now_us=state.clock.now_us(),
        export=export,
    )
    await _check_machine(state, principal.tenant_id, machine_id)
    return query


@router.get("", response_model=HistoryPage)
async def read_history(
    principal: Viewer,
    state: State,
    machine_id: MachineId,
    metric_name: MetricNames = [],  # noqa: B006 (FastAPI copies query defaults)
    start: Start = None,
    end: End = None,
    interval: Interval = None,
    max_points: MaxPoints = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Raw points per page.")] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page.")] = None,
) -> Response:
    """Raw points in (timestamp, id) order with keyset paging, or one point per bucket with `interval`/`max_points`."""
    query = await _resolve(
        state, principal, machine_id, metric_name, start, end, interval, max_points, limit=limit, cursor=cursor
    )
    next_cursor: str | None = None
    async with state.engine.connect() as conn:
        if query.interval_us is not None:
            points = await history.buckets(
                conn,
                machine_id=query.machine_id,
                metric_names=query.metric_names,
                start_us=query.start_us,
                end_us=query.end_us,
                interval_us=query.interval_us,
            )
            items = [_bucket_item(p) for p in points]
        else:
            snapshot = query.cursor.snapshot_id if query.cursor else await history.snapshot_id(conn)
            raw = await history.raw_page(
                conn,
                machine_id=query.machine_id,
                metric_names=query.metric_names,
                start_us=query.start_us,
                end_us=query.end_us,
                after=(query.cursor.ts, query.cursor.id) if query.cursor else None,
                upto_id=snapshot,
                limit=query.limit + 1,
            )
            if len(raw) > query.limit:
                raw = raw[: query.limit]
                _, last_ts, _, _, last_id = raw[-1]
                next_cursor = encode_cursor(
                    state.cursors, Cursor(last_ts, last_id, snapshot, query.start_us, query.end_us, query.fingerprint)
                )
            items = [_raw_item(p) for p in raw]
    body = {
        "machine_id": query.machine_id,
        "metric_names": list(query.metric_names),
        "start": format_micros(query.start_us),
        "end": format_micros(query.end_us),
        "interval": format_interval(query.interval_us) if query.interval_us is not None else None,
        "items": items,
        "next_cursor": next_cursor,
    }
    return Response(orjson.dumps(body), media_type="application/json")


async def export_csv(state: AppState, query: HistoryQuery) -> AsyncIterator[str]:
    """The CSV of a query, header first, one chunk per keyset page (memory stays flat for any range)."""
    if query.interval_us is not None:
        yield BUCKET_CSV_HEADER
        async for bucket_page in history.iter_buckets(
            state.engine,
            machine_id=query.machine_id,
            metric_names=query.metric_names,
            start_us=query.start_us,
            end_us=query.end_us,
            interval_us=query.interval_us,
        ):
            yield bucket_csv_lines(query.machine_id, bucket_page)
        return
    yield RAW_CSV_HEADER
    async with state.engine.connect() as conn:
        snapshot = await history.snapshot_id(conn)
    async for raw_page in history.iter_raw(
        state.engine,
        machine_id=query.machine_id,
        metric_names=query.metric_names,
        start_us=query.start_us,
        end_us=query.end_us,
        upto_id=snapshot,
    ):
        yield raw_csv_lines(query.machine_id, raw_page)


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "CSV with a header row."}},
)
async def export_history(
    principal: Viewer,
    state: State,
    machine_id: MachineId,
    metric_name: MetricNames = [],  # noqa: B006 (FastAPI copies query defaults)
    start: Start = None,
    end: End = None,
    interval: Interval = None,
    max_points: MaxPoints = None,
) -> StreamingResponse:
    """The same query as `GET /api/v1/sensor-data`, every row at once as streamed CSV (no paging)."""
    query = await _resolve(
        state, principal, machine_id, metric_name, start, end, interval, max_points, limit=DEFAULT_LIMIT, export=True
    )
    stamp = format_micros(query.start_us).replace(":", "").replace("-", "")
    filename = f"haltless-{query.machine_id[:8]}-{stamp}.csv"
    return StreamingResponse(
        export_csv(state, query),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )

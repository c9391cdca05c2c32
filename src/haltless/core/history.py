"""Sensor history queries, I/O-free: limits, intervals, the interval ladder, cursors, query resolution, CSV lines."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

from haltless.core.cursors import CursorCodec
from haltless.core.names import METRIC_NAME_RULE, shown, valid_metric_name
from haltless.core.timefmt import TimestampError, format_micros, parse_timestamp, to_micros
from haltless.errors import InvalidRequest

SECOND_US = 1_000_000
MINUTE_US = 60 * SECOND_US
HOUR_US = 60 * MINUTE_US
DAY_US = 24 * HOUR_US

DEFAULT_RANGE_US = HOUR_US
# Raw points of a month already run to millions at 1 Hz; longer spans are for aggregated charts.
MAX_RAW_RANGE_US = 31 * DAY_US
MAX_AGGREGATED_RANGE_US = 366 * DAY_US
DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000
# A JSON answer holds every bucket at once; an export streams them, so it may ask for far more.
MAX_BUCKETS = 10_000
MAX_EXPORT_BUCKETS = 1_000_000
MAX_METRICS_PER_QUERY = 20
MAX_INTERVAL_US = 366 * DAY_US
# The instants a query window may span: every one of them has a wire form (`format_micros`). A default start
# (end - 1h) or end (start + 1h) that would fall outside is cut to these.
EARLIEST_US = to_micros(datetime.min.replace(tzinfo=UTC))
LATEST_US = to_micros(datetime.max.replace(tzinfo=UTC))

_UNITS = {"s": SECOND_US, "m": MINUTE_US, "h": HOUR_US, "d": DAY_US}
_INTERVAL = re.compile(r"^([0-9]{1,9})([A-Za-z]*)$")

# Nice intervals `max_points` may pick from, finest first; all divide a day or are whole days.
INTERVAL_LADDER: tuple[int, ...] = (
    1 * SECOND_US,
    2 * SECOND_US,
    5 * SECOND_US,
    10 * SECOND_US,
    15 * SECOND_US,
    30 * SECOND_US,
    1 * MINUTE_US,
    2 * MINUTE_US,
    5 * MINUTE_US,
    10 * MINUTE_US,
    15 * MINUTE_US,
    30 * MINUTE_US,
    1 * HOUR_US,
    2 * HOUR_US,
    3 * HOUR_US,
    6 * HOUR_US,
    12 * HOUR_US,
    1 * DAY_US,
    2 * DAY_US,
    7 * DAY_US,
)


# One stored reading as history returns it: (metric_name, ts, value, unit, id); `id` only breaks ties between
# equal timestamps. A plain row, not a NamedTuple: pages are handed on exactly as the driver returns them,
# because building a named tuple per row was a large share of a page (docs/benchmarks.md, "Hot-path choices").
# Unpack it.
RawPoint = tuple[str, int, float, str, int]


@dataclass(frozen=True, slots=True)
class BucketPoint:
    """Aggregates of one metric over one interval; `ts` is the bucket start, aligned to the UTC epoch."""

    metric_name: str
    ts: int
    avg: float
    min: float
    max: float
    count: int
    last: float


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where the next raw page starts, and the query it belongs to (pinned so every page sees the same rows)."""

    ts: int
    id: int
    # Highest reading id when the first page was read: later arrivals never shift the pages.
    snapshot_id: int
    start_us: int
    end_us: int
    fingerprint: str


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    """A validated history query; `interval_us` None means raw points."""

    machine_id: str
    metric_names: tuple[str, ...]
    start_us: int
    end_us: int
    interval_us: int | None
    limit: int
    cursor: Cursor | None

    @property
    def fingerprint(self) -> str:
        return query_fingerprint(self.machine_id, self.metric_names)


def parse_interval(text: str) -> int:
    """`10s`, `1m`, `5m`, `1h`, `1d` → microseconds; raises InvalidRequest with the reason."""
    match = _INTERVAL.match(text.strip())
    if match is None:
        raise InvalidRequest(f"interval {text!r} must be a whole number and a unit, such as 10s, 1m, 5m, 1h or 1d")
    count, unit = int(match.group(1)), match.group(2)
    if unit not in _UNITS:
        shown = repr(unit) if unit else "(none)"
        raise InvalidRequest(f"interval {text!r} has unknown unit {shown}; use s, m, h or d (10s, 1m, 1h, 1d)")
    micros = count * _UNITS[unit]
    if micros <= 0:
        raise InvalidRequest("interval must be at least 1s")
    if micros > MAX_INTERVAL_US:
        raise InvalidRequest("interval may be at most 366d")
    return micros


def format_interval(micros: int) -> str:
    """The shortest spelling of an interval: 60 s → `1m`, 90 s → `90s`."""
    for unit, size in (("d", DAY_US), ("h", HOUR_US), ("m", MINUTE_US)):
        if micros % size == 0:
            return f"{micros // size}{unit}"
    return f"{micros // SECOND_US}s"


def bucket_count(start_us: int, end_us: int, interval_us: int) -> int:
    """How many epoch-aligned buckets the half-open range [start, end) touches."""
    return (end_us - 1) // interval_us - start_us // interval_us + 1


def interval_for_max_points(start_us: int, end_us: int, max_points: int) -> int:
    """The finest ladder interval giving at most `max_points` buckets; InvalidRequest when none does."""
    for interval in INTERVAL_LADDER:
        if bucket_count(start_us, end_us, interval) <= max_points:
            return interval
    coarsest = INTERVAL_LADDER[-1]
    needed = bucket_count(start_us, end_us, coarsest)
    raise InvalidRequest(
        f"max_points={max_points} is too small for this range: the coarsest interval "
        f"({format_interval(coarsest)}) gives {needed} points"
    )


def split_metric_names(values: Iterable[str]) -> tuple[str, ...]:
    """Metric names from repeated and/or comma-separated parameters, in first-seen order, without repeats."""
    names: list[str] = []
    for value in values:
        for part in value.split(","):
            name = part.strip()
            if not name:
                continue
            if not valid_metric_name(name):
                # Nothing else was ever stored (ingest applies the same rule), and a NUL would fail the query.
                shown_name = shown(name if len(name) <= 80 else name[:80] + "...")
                raise InvalidRequest(f"metric_name {shown_name} is not a metric name: {METRIC_NAME_RULE}")
            if name not in names:
                names.append(name)
    if not names:
        raise InvalidRequest("metric_name is required (repeat it or separate names with commas)")
    if len(names) > MAX_METRICS_PER_QUERY:
        raise InvalidRequest(f"at most {MAX_METRICS_PER_QUERY} metric names per query (got {len(names)})")
    return tuple(names)


def query_fingerprint(machine_id: str, metric_names: Sequence[str]) -> str:
    """A short digest tying a cursor to its machine and metrics."""
    digest = hashlib.blake2s("\n".join([machine_id, *sorted(metric_names)]).encode(), digest_size=6)
    return digest.hexdigest()


HISTORY_CURSOR = "history/1"
_CURSOR_SHAPE = (int, int, int, int, int, str)


def encode_cursor(codec: CursorCodec, cursor: Cursor) -> str:
    """An opaque, signed URL-safe token for `cursor`."""
    fields = (cursor.ts, cursor.id, cursor.snapshot_id, cursor.start_us, cursor.end_us, cursor.fingerprint)
    return codec.encode(HISTORY_CURSOR, fields)


def decode_cursor(codec: CursorCodec, token: str) -> Cursor:
    """The cursor inside a token from `encode_cursor`; InvalidRequest for anything else."""
    fields = codec.decode(HISTORY_CURSOR, token, _CURSOR_SHAPE)  # of the types in _CURSOR_SHAPE
    return Cursor(*cast("tuple[int, int, int, int, int, str]", fields))


def _parse_time(name: str, text: str) -> int:
    try:
        return to_micros(parse_timestamp(text))
    except TimestampError as exc:
        raise InvalidRequest(f"{name}: {exc}") from None
    except OverflowError:
        raise InvalidRequest(f"{name}: {text!r} is out of range") from None


def _window(start: str | None, end: str | None, now_us: int) -> tuple[int, int]:
    end_us = _parse_time("end", end) if end is not None else None
    start_us = _parse_time("start", start) if start is not None else None
    if end_us is None:
        end_us = now_us if start_us is None or start_us < now_us else min(start_us + DEFAULT_RANGE_US, LATEST_US)
    if start_us is None:
        start_us = max(end_us - DEFAULT_RANGE_US, EARLIEST_US)
    if end_us <= start_us:
        raise InvalidRequest("end must be after start")
    return start_us, end_us


def resolve_query(
    *,
    machine_id: str,
    metric_names: Iterable[str],
    start: str | None,
    end: str | None,
    interval: str | None,
    max_points: int | None,
    limit: int,
    cursor: str | None,
    cursors: CursorCodec,
    now_us: int,
    export: bool = False,
) -> HistoryQuery:
    """Validate and complete a history query (defaults: end=now, start=end-1h); InvalidRequest says what is wrong."""
    names = split_metric_names(metric_names)
    if interval is not None and max_points is not None:
        raise InvalidRequest("give either interval or max_points, not both")
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequest(f"limit must be between 1 and {MAX_LIMIT}")
    aggregated = interval is not None or max_points is not None
    decoded: Cursor | None = None
    if cursor is not None:
        if aggregated:
            raise InvalidRequest("cursor applies to raw points; aggregated results come in one response")
        decoded = decode_cursor(cursors, cursor)
        if decoded.fingerprint != query_fingerprint(machine_id, names):
            raise InvalidRequest("cursor belongs to a different query (machine_id or metric_name changed)")
        start_us, end_us = decoded.start_us, decoded.end_us
        if (start is not None and _parse_time("start", start) != start_us) or (
            end is not None and _parse_time("end", end) != end_us
        ):
            raise InvalidRequest("start/end differ from the cursor's query; repeat them unchanged or leave them out")
    else:
        start_us, end_us = _window(start, end, now_us)
    span = end_us - start_us
    interval_us: int | None = None
    if not aggregated:
        if span > MAX_RAW_RANGE_US:
            raise InvalidRequest(
                f"range too long for raw points: at most {MAX_RAW_RANGE_US // DAY_US} days; "
                "use interval or max_points for longer ranges"
            )
    else:
        if span > MAX_AGGREGATED_RANGE_US:
            raise InvalidRequest(f"range too long: at most {MAX_AGGREGATED_RANGE_US // DAY_US} days")
        if max_points is not None:
            if max_points < 1:
                raise InvalidRequest("max_points must be at least 1")
            interval_us = interval_for_max_points(start_us, end_us, min(max_points, MAX_BUCKETS))
        else:
            assert interval is not None
            interval_us = parse_interval(interval)
            limit_buckets = MAX_EXPORT_BUCKETS if export else MAX_BUCKETS
            count = bucket_count(start_us, end_us, interval_us)
            if count > limit_buckets:
                raise InvalidRequest(
                    f"{count} points per metric at interval {format_interval(interval_us)}; at most {limit_buckets}: "
                    "choose a longer interval or a shorter range"
                )
    return HistoryQuery(machine_id, names, start_us, end_us, interval_us, limit, decoded)


def _csv_field(text: str) -> str:
    # RFC 4180: quote only fields that need it (units are free text; everything else is a safe alphabet).
    if any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


RAW_CSV_HEADER = "timestamp,machine_id,metric_name,value,unit\r\n"
BUCKET_CSV_HEADER = "timestamp,machine_id,metric_name,avg,min,max,count,last\r\n"


def raw_csv_lines(machine_id: str, points: Iterable[RawPoint]) -> str:
    """CSV lines (CRLF-terminated, no header) of raw points."""
    points = list(points)
    # A page holds a handful of distinct units: quote each once instead of once per row (export hot path).
    units = {unit: _csv_field(unit) for unit in {point[3] for point in points}}
    return "".join(
        f"{format_micros(ts)},{machine_id},{metric_name},{value!r},{units[unit]}\r\n"
        for metric_name, ts, value, unit, _ in points
    )


def bucket_csv_lines(machine_id: str, points: Iterable[BucketPoint]) -> str:
    """CSV lines (CRLF-terminated, no header) of buckets."""
    return "".join(
        f"{format_micros(p.ts)},{machine_id},{p.metric_name},{p.avg!r},{p.min!r},{p.max!r},{p.count},{p.last!r}\r\n"
        for p in points
    )

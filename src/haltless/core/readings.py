"""Validation of ingested readings, one item at a time, so a bad item never sinks its batch."""

from __future__ import annotations

import functools
import math
import uuid
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec

from haltless.core.names import (
    CLEAN_TEXT_PATTERN,
    MAX_METRIC_NAME_LENGTH,
    METRIC_NAME_PATTERN,
    METRIC_NAME_RULE,
    shown,
    text_problem,
    valid_metric_name,
)
from haltless.core.timefmt import TimestampError, parse_timestamp, to_micros

MAX_READINGS_PER_REQUEST = 10_000
MAX_INGEST_BODY_BYTES = 8 * 1024 * 1024
MAX_UNIT_LENGTH = 32
MAX_READING_ID_LENGTH = 128
_isfinite = math.isfinite
_CANONICAL_UUID_LENGTH = 36
_CLEAN_TEXT = {"pattern": CLEAN_TEXT_PATTERN}  # the rule text_problem checks, as the schema states it
_KNOWN_FIELDS = frozenset({"machine_id", "metric_name", "value", "unit", "timestamp", "reading_id"})


@dataclass(slots=True)
class Reading:
    """One valid reading, ready to store; `index` is its position in the request. Treat it as immutable.

    Not `frozen`: one is built per ingested reading, and a frozen dataclass's __init__ costs four times as much.
    """

    index: int
    machine_id: str
    metric_name: str
    value: float
    unit: str
    ts: int  # microseconds since the Unix epoch, UTC
    reading_id: str | None


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why the item at `index` was not accepted."""

    index: int
    detail: str


def normalize_uuid(text: object) -> str | None:
    """The canonical lowercase form of a UUID string, or None when it is not one."""
    if not isinstance(text, str) or len(text) > 64:
        return None
    return _canonical_uuid(text)


@functools.lru_cache(maxsize=65_536)
def _canonical_uuid(text: str) -> str | None:
    # Hot path (every ingested reading): a fleet has few machines, so each id is parsed once, then looked up.
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return None


def validate_reading(index: int, item: object, now_us: int, max_future_us: int) -> Reading | Rejection:
    """Check one raw item of `{"readings": [...]}`; `now_us` is the server's receive time."""
    if not isinstance(item, dict):
        return Rejection(index, "reading must be a JSON object")
    if not _KNOWN_FIELDS.issuperset(item):  # no set built per item on the hot path
        unknown = item.keys() - _KNOWN_FIELDS
        return Rejection(index, f"unknown field(s): {', '.join(sorted(map(shown, unknown)))}")

    raw_id = item.get("machine_id")
    # Hot path (every ingested reading): the checks are inlined, exact types first (JSON gives no subclasses).
    machine_id = _canonical_uuid(raw_id) if type(raw_id) is str and len(raw_id) <= 64 else None
    if machine_id is None:
        return Rejection(index, "machine_id must be a UUID string")

    metric_name = item.get("metric_name")
    if type(metric_name) is not str or not metric_name:
        return Rejection(index, "metric_name must be a non-empty string")
    if not valid_metric_name(metric_name):
        return Rejection(index, f"metric_name must be {METRIC_NAME_RULE}")

    value: Any = item.get("value")  # narrowed by the exact-type checks below (mypy cannot follow `type(x) is`)
    kind = type(value)
    if kind is not float:
        if kind is not int:  # bool is not int here: `true` is not a number
            return Rejection(index, "value must be a number")
        try:
            value = float(value)
        except OverflowError:  # an integer literal beyond any float
            return Rejection(index, "value must be a finite number (no NaN or Infinity)")
    if not _isfinite(value):
        return Rejection(index, "value must be a finite number (no NaN or Infinity)")

    unit = item.get("unit")
    if unit is None:
        unit = ""
    elif type(unit) is not str or len(unit) > MAX_UNIT_LENGTH:
        return Rejection(index, f"unit must be a string of at most {MAX_UNIT_LENGTH} characters")
    # NUL (PostgreSQL text cannot hold it) or a lone surrogate (no driver can encode it) would fail the whole
    # batch when stored: refuse the item here instead, with the others still stored.
    elif not unit.isprintable() and (problem := text_problem(unit)) is not None:
        return Rejection(index, f"unit {problem}")

    raw_ts = item.get("timestamp")
    if raw_ts is None:
        ts = now_us
    elif isinstance(raw_ts, str):
        try:
            ts = to_micros(parse_timestamp(raw_ts))
        except TimestampError as exc:
            return Rejection(index, f"timestamp: {exc}")
        except OverflowError:
            return Rejection(index, "timestamp is out of range")
        if ts > now_us + max_future_us:
            return Rejection(index, "timestamp is too far in the future (check the sender's clock)")
        if ts < 0:
            return Rejection(index, "timestamp is before 1970")
    else:
        return Rejection(index, "timestamp must be an ISO 8601 string such as 2026-04-04T10:30:05Z")

    reading_id = item.get("reading_id")
    if reading_id is not None and (
        not isinstance(reading_id, str) or not reading_id or len(reading_id) > MAX_READING_ID_LENGTH
    ):
        return Rejection(index, f"reading_id must be a non-empty string of at most {MAX_READING_ID_LENGTH} characters")
    if reading_id is not None and not reading_id.isprintable() and (problem := text_problem(reading_id)) is not None:
        return Rejection(index, f"reading_id {problem}")

    return Reading(index, machine_id, metric_name, value, unit, ts, reading_id)


class _WireReading(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """One item as `decode_valid_batch` reads it: types and lengths are checked in C while decoding.

    It is also the ingest body's published schema (`ingest_body_schema`): what msgspec cannot check in C (the
    uuid form, the metric-name alphabet, clean text, the timestamp format) is stated through `extra_json_schema`,
    which only adds to the schema, and checked by the code below and by `validate_reading`.
    """

    machine_id: Annotated[str, msgspec.Meta(max_length=_CANONICAL_UUID_LENGTH, extra_json_schema={"format": "uuid"})]
    metric_name: Annotated[
        str,
        msgspec.Meta(
            min_length=1, max_length=MAX_METRIC_NAME_LENGTH, extra_json_schema={"pattern": METRIC_NAME_PATTERN}
        ),
    ]
    value: float  # JSON integers are taken as floats; booleans, strings and out-of-range numbers are refused
    unit: Annotated[str, msgspec.Meta(max_length=MAX_UNIT_LENGTH, extra_json_schema=_CLEAN_TEXT)] | None = None
    timestamp: Annotated[str, msgspec.Meta(extra_json_schema={"format": "date-time"})] | None = None
    reading_id: (
        Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_READING_ID_LENGTH, extra_json_schema=_CLEAN_TEXT)]
        | None
    ) = None


class _WireBody(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    readings: Annotated[list[_WireReading], msgspec.Meta(max_length=MAX_READINGS_PER_REQUEST)]


def ingest_body_schema() -> dict[str, Any]:
    """The JSON Schema of an ingest body (the OpenAPI request schema of `POST /api/v1/sensor-data`), generated
    from the types the fast path decodes with, so the published limits are the enforced ones."""
    generated = msgspec.json.schema(_WireBody)
    definitions = generated["$defs"]

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(definitions[node["$ref"].rsplit("/", 1)[1]])
            return {key: inline(value) for key, value in node.items() if key not in ("title", "default")}
        if isinstance(node, list):
            return [inline(value) for value in node]
        return node

    body: dict[str, Any] = inline(generated)
    body["properties"]["readings"]["items"]["description"] = (
        "Checked on its own: an invalid reading is rejected alone, with its index and why."
    )
    return body


_decode_wire_body = msgspec.json.Decoder(_WireBody).decode


def decode_valid_batch(body: bytes, now_us: int, max_future_us: int) -> list[Reading] | None:
    """Every reading of an ingest body in which every item is valid, or None when anything is off.

    Hot path (bench M4): msgspec decodes and type-checks the body in C, and what it cannot check (canonical
    machine ids, the metric-name alphabet, control characters in units) is checked once per distinct value, so a
    valid batch costs a third of `validate_reading` item by item. It only ever accepts what `validate_reading`
    accepts, with the same result (tests/core/test_readings.py); on None the caller validates item by item, which
    says what is wrong with which item. (A lone surrogate never gets this far: msgspec refuses it while decoding,
    and the item-by-item path then rejects just the items holding one.)
    """
    try:
        items = _decode_wire_body(body).readings
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    if not all(_canonical_uuid(machine_id) == machine_id for machine_id in {item.machine_id for item in items}):
        return None  # e.g. upper-case ids: valid, but the item-by-item path writes them in canonical form
    if not all(map(valid_metric_name, {item.metric_name for item in items})):
        return None
    if any(unit is not None and text_problem(unit) is not None for unit in {item.unit for item in items}):
        return None
    stamps: list[int] | None = None
    if any(item.timestamp is not None or item.reading_id is not None for item in items):
        stamps = []
        for item in items:
            reading_id = item.reading_id
            # isprintable() first: it settles nearly every id without a call (text_problem does it too).
            if reading_id is not None and not reading_id.isprintable() and text_problem(reading_id) is not None:
                return None
            if item.timestamp is None:
                stamps.append(now_us)
                continue
            try:
                ts = to_micros(parse_timestamp(item.timestamp))
            except (TimestampError, OverflowError):
                return None
            if ts > now_us + max_future_us or ts < 0:
                return None
            stamps.append(ts)
    if stamps is None:
        return [
            Reading(index, item.machine_id, item.metric_name, item.value, item.unit or "", now_us, None)
            for index, item in enumerate(items)
        ]
    return [
        Reading(index, item.machine_id, item.metric_name, item.value, item.unit or "", ts, item.reading_id)
        for index, (item, ts) in enumerate(zip(items, stamps, strict=True))
    ]

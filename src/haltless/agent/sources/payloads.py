"""MQTT payloads: a JSON object with a value field, a bare JSON number, or plain number text."""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from haltless.agent.captured import parse_capture_time, parse_value


@dataclass(frozen=True, slots=True)
class PayloadReading:
    """What a payload said; fields it did not carry are None and come from the mapping or the clock."""

    value: float
    unit: str | None = None
    ts_us: int | None = None
    reading_id: str | None = None


class PayloadError(ValueError):
    """The payload holds no usable number."""


def parse_payload(raw: bytes, value_field: str) -> PayloadReading:
    """Read one message body; PayloadError says why it is unusable."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        data = raw.decode("utf-8", errors="replace")
    if isinstance(data, dict):
        if value_field not in data:
            raise PayloadError(f"JSON object without a {value_field!r} field")
        value = parse_value(data[value_field])
        if value is None:
            raise PayloadError(f"{value_field!r} is not a finite number")
        unit = data.get("unit")
        reading_id = data.get("reading_id")
        raw_ts = data.get("timestamp", data.get("ts"))
        ts_us = parse_capture_time(raw_ts) if raw_ts is not None else None
        if raw_ts is not None and ts_us is None:
            raise PayloadError("timestamp is neither ISO 8601 with a zone nor Unix seconds")
        return PayloadReading(
            value,
            unit if isinstance(unit, str) else None,
            ts_us,
            reading_id if isinstance(reading_id, str) and reading_id else None,
        )
    value = parse_value(data)
    if value is None:
        raise PayloadError("not a JSON object, JSON number or number text")
    return PayloadReading(value)

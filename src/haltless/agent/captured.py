"""A reading as the agent captured it: identity and measurement time fixed at capture, never changed later."""

from __future__ import annotations

import hashlib
import math
import time
import uuid
from dataclasses import dataclass

from haltless.core.timefmt import TimestampError, format_micros, parse_timestamp, to_micros


@dataclass(frozen=True, slots=True)
class CapturedReading:
    """One reading on its way to the server; `reading_id` makes every resend idempotent."""

    reading_id: str
    machine_id: str
    metric_name: str
    value: float
    unit: str
    ts_us: int  # measurement time, microseconds since the Unix epoch, UTC

    def to_wire(self) -> dict[str, object]:
        """The item of a `POST /api/v1/sensor-data` body."""
        return {
            "reading_id": self.reading_id,
            "machine_id": self.machine_id,
            "metric_name": self.metric_name,
            "value": self.value,
            "unit": self.unit,
            "timestamp": format_micros(self.ts_us),
        }


def now_micros() -> int:
    """The agent's wall clock, in the storage unit of reading times."""
    return time.time_ns() // 1000


def new_reading_id() -> str:
    """A fresh id for a reading that did not bring its own."""
    return str(uuid.uuid4())


def derived_reading_id(kind: str, *parts: object) -> str:
    """An id fixed by what was measured (`kind:` + SHA-256 of the parts), so capturing it again repeats the id.

    Industrial sources send a value again after a reconnect (an OPC UA subscription starts with the current
    value, stamped with the time it was measured); the server then counts the repeat as a duplicate.
    """
    digest = hashlib.sha256("\x00".join(map(str, parts)).encode()).hexdigest()
    return f"{kind}:{digest[:40]}"


def parse_capture_time(raw: object) -> int | None:
    """Microseconds of an ISO 8601 string or a Unix time in seconds; None when it is neither."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int | float):
        return int(raw * 1_000_000) if math.isfinite(raw) and raw >= 0 else None
    if isinstance(raw, str):
        text = raw.strip()
        try:
            return parse_capture_time(float(text))
        except ValueError:
            pass
        try:
            return to_micros(parse_timestamp(text))
        except (TimestampError, OverflowError):
            return None
    return None


def parse_value(raw: object) -> float | None:
    """A finite float from a JSON number or numeric text; None otherwise (booleans are not numbers)."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, str):
        try:
            raw = float(raw.strip())
        except ValueError:
            return None
    if isinstance(raw, int | float):
        value = float(raw)
        return value if math.isfinite(value) else None
    return None

"""The one place where times are parsed from and written to the wire (ISO 8601 UTC with `Z`)."""

from __future__ import annotations

import functools
from datetime import UTC, datetime

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class TimestampError(ValueError):
    """A timestamp string that is not ISO 8601 with a time zone."""


def parse_timestamp(text: str) -> datetime:
    """Parse an ISO 8601 timestamp that names its zone (`Z` or an offset) into an aware UTC datetime."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise TimestampError(f"{text!r} is not an ISO 8601 timestamp such as 2026-04-04T10:30:05Z") from None
    if parsed.tzinfo is None:
        raise TimestampError(f"{text!r} has no time zone; add Z for UTC (2026-04-04T10:30:05Z)")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:30:00+01:00 is before the first representable moment
        raise TimestampError(f"{text!r} is out of range") from None


def to_micros(moment: datetime) -> int:
    """Microseconds since the Unix epoch; the storage form of every reading time."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(micros: int) -> datetime:
    """The aware UTC datetime of a stored microsecond timestamp."""
    return datetime.fromtimestamp(micros / 1_000_000, tz=UTC)


@functools.lru_cache(maxsize=4096)
def _format_seconds(seconds: int) -> str:
    # Hot path (every event's timestamp): readings of one batch mostly share their second, so the
    # calendar arithmetic runs once per second instead of once per reading.
    # isoformat, not strftime("%Y"): glibc writes the year 5 as "5", not "0005".
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat(timespec="seconds")[:19]


@functools.lru_cache(maxsize=8192)
def format_micros(micros: int) -> str:
    """`2026-04-04T10:30:05Z`, with fractional seconds only when there are any.

    Cached: the readings of a batch sent without timestamps share the server's receive time, and each
    was formatted again for its event (bench M4: a tenth of the ingest path's own work).
    """
    seconds, fraction = divmod(micros, 1_000_000)
    base = _format_seconds(seconds)
    if fraction:
        return f"{base}.{fraction:06d}".rstrip("0") + "Z"
    return base + "Z"


def format_now(micros: int) -> str:
    """`format_micros` without its cache, for a time formatted once: the server's clock (heartbeats).

    Every socket's first heartbeat has a microsecond of its own: through the cache each would keep an entry
    (~160 B, never looked up again) and push out the timestamps that readings do share.
    """
    return format_micros.__wrapped__(micros)


def format_datetime(moment: datetime) -> str:
    """Wire form of an aware datetime."""
    return format_micros(to_micros(moment.astimezone(UTC)))

"""The `Retry-After` header (RFC 9110 section 10.2.3): how long a server asks to be left alone.

One parser for every reader of the header: the client (RateLimited.retry_after), the agent's uplink and the
notification dispatcher. Each caller caps the answer by its own policy. Pure: `now` comes in as an argument.
"""

from __future__ import annotations

import math
import re
from datetime import UTC
from email.utils import parsedate_to_datetime

# delay-seconds is 1*DIGIT; a decimal fraction is taken too (some servers send one), a sign or exponent is not.
_SECONDS = re.compile(r"[0-9]+(\.[0-9]+)?")


def parse_retry_after(value: str | None, now_us: int) -> float | None:
    """Seconds to wait from a `Retry-After` value: delta-seconds, or an HTTP-date counted from `now_us`
    (microseconds since the epoch; a date already past is 0). None when absent or not either form."""
    if value is None:
        return None
    text = value.strip()
    if _SECONDS.fullmatch(text):
        seconds = float(text)
        return seconds if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000" or no zone: RFC 5322 says UTC
        when = when.replace(tzinfo=UTC)
    return max(when.timestamp() - now_us / 1_000_000, 0.0)

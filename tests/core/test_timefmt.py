from __future__ import annotations

import pytest

from haltless.core.timefmt import TimestampError, format_micros, parse_timestamp, to_micros


@pytest.mark.parametrize(
    ("text", "wire"),
    [
        ("2026-04-04T10:30:05Z", "2026-04-04T10:30:05Z"),
        ("2026-04-04T12:30:05+02:00", "2026-04-04T10:30:05Z"),
        ("2026-04-04T10:30:05.250Z", "2026-04-04T10:30:05.25Z"),
        ("2026-04-04T10:30:05.000001Z", "2026-04-04T10:30:05.000001Z"),
    ],
)
def test_round_trip_to_utc_z(text: str, wire: str) -> None:
    assert format_micros(to_micros(parse_timestamp(text))) == wire


@pytest.mark.parametrize("text", ["2026-04-04T10:30:05", "tomorrow", "", "2026-13-01T00:00:00Z"])
def test_refuses_naive_or_malformed(text: str) -> None:
    with pytest.raises(TimestampError):
        parse_timestamp(text)


def test_a_time_before_the_first_representable_moment_is_a_timestamp_error() -> None:
    with pytest.raises(TimestampError, match="out of range"):
        parse_timestamp("0001-01-01T00:03:00.0+01:00")

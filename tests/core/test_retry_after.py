"""`Retry-After`: one parser for the client, the agent's uplink and the notification dispatcher."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from haltless.core.retry_after import parse_retry_after

NOW_US = int(datetime(2026, 4, 4, 10, 30, 0, tzinfo=UTC).timestamp() * 1_000_000)


@pytest.mark.parametrize(("value", "seconds"), [("7", 7.0), (" 120 ", 120.0), ("0", 0.0), ("1.5", 1.5)])
def test_delay_seconds(value: str, seconds: float) -> None:
    assert parse_retry_after(value, NOW_US) == seconds


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("Sat, 04 Apr 2026 10:30:30 GMT", 30.0),  # IMF-fixdate, the form servers must send
        ("Saturday, 04-Apr-26 10:31:00 GMT", 60.0),  # obsolete RFC 850 form, which recipients must accept
        ("Sat Apr  4 10:30:05 2026", 5.0),  # obsolete asctime form
        ("Sat, 04 Apr 2026 10:29:00 GMT", 0.0),  # already past: go ahead now
    ],
)
def test_http_dates_count_from_now(value: str, seconds: float) -> None:
    assert parse_retry_after(value, NOW_US) == seconds


@pytest.mark.parametrize(
    "value", [None, "", "soon", "-5", "+5", "nan", "inf", "1e3", "5 s", "0x10", "Sat, 99 Foo 2026", "٣", "9" * 400]
)
def test_garbage_is_none(value: str | None) -> None:
    """The client's copy turned "-5" into -5.0 and "nan" into nan for RateLimited.retry_after, and both the
    client's and the dispatcher's copies ignored the HTTP-date form."""
    assert parse_retry_after(value, NOW_US) is None


@given(st.text(max_size=60))
def test_any_text_is_a_non_negative_finite_number_or_none(value: str) -> None:
    seconds = parse_retry_after(value, NOW_US)
    assert seconds is None or 0.0 <= seconds < float("inf")

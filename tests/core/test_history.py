"""History query rules without I/O: intervals, the ladder, cursors, query resolution, CSV lines."""

from __future__ import annotations

import base64
import json

import pytest

from haltless.core.cursors import CursorCodec
from haltless.core.history import (
    DAY_US,
    HOUR_US,
    INTERVAL_LADDER,
    MINUTE_US,
    SECOND_US,
    BucketPoint,
    Cursor,
    RawPoint,
    bucket_count,
    bucket_csv_lines,
    decode_cursor,
    encode_cursor,
    format_interval,
    interval_for_max_points,
    parse_interval,
    query_fingerprint,
    raw_csv_lines,
    resolve_query,
    split_metric_names,
)
from haltless.core.timefmt import format_micros, parse_timestamp, to_micros
from haltless.errors import InvalidRequest

MACHINE = "7b0c5a52-8d4e-4d55-9a8e-0c1f1b6a2f10"
NOW = to_micros(parse_timestamp("2026-04-04T12:00:00Z"))
CODEC = CursorCodec.from_secret("test-secret-" + "x" * 32)


def us(text: str) -> int:
    return to_micros(parse_timestamp(text))


@pytest.mark.parametrize(
    ("text", "expected"),
    [("10s", 10 * SECOND_US), ("1m", MINUTE_US), ("5m", 5 * MINUTE_US), ("1h", HOUR_US), ("1d", DAY_US)],
)
def test_parse_interval(text: str, expected: int) -> None:
    assert parse_interval(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("5x", "unknown unit 'x'"),
        ("10", "unknown unit (none)"),
        ("m", "whole number"),
        ("0s", "at least 1s"),
        ("1.5m", "whole number"),
        ("400d", "at most 366d"),
        ("-1m", "whole number"),
    ],
)
def test_bad_intervals_say_why(text: str, fragment: str) -> None:
    with pytest.raises(InvalidRequest, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        parse_interval(text)


def test_format_interval_uses_the_largest_whole_unit() -> None:
    assert [format_interval(i) for i in (10 * SECOND_US, 90 * SECOND_US, 2 * MINUTE_US, 3 * HOUR_US, 7 * DAY_US)] == [
        "10s",
        "90s",
        "2m",
        "3h",
        "7d",
    ]


def test_bucket_count_counts_aligned_buckets_touched() -> None:
    assert bucket_count(0, 60 * SECOND_US, MINUTE_US) == 1
    assert bucket_count(30 * SECOND_US, 90 * SECOND_US, MINUTE_US) == 2
    assert bucket_count(0, 60 * SECOND_US + 1, MINUTE_US) == 2


def test_max_points_picks_the_finest_ladder_step_that_fits() -> None:
    start = us("2026-04-04T00:00:00Z")
    assert interval_for_max_points(start, start + DAY_US, 500) == 5 * MINUTE_US  # 288 points; 2m would be 720
    assert interval_for_max_points(start, start + HOUR_US, 500) == 10 * SECOND_US  # 360 points; 5s would be 720
    assert interval_for_max_points(start, start + 30 * DAY_US, 500) == 2 * HOUR_US
    assert interval_for_max_points(start, start + 60 * SECOND_US, 500) == SECOND_US
    assert list(INTERVAL_LADDER) == sorted(INTERVAL_LADDER)


def test_max_points_too_small_for_the_coarsest_step() -> None:
    start = us("2026-01-01T00:00:00Z")
    with pytest.raises(InvalidRequest, match="too small"):
        interval_for_max_points(start, start + 300 * DAY_US, 10)


def test_metric_names_split_on_commas_and_repeat() -> None:
    assert split_metric_names(["temperature,vibration", "current", " temperature "]) == (
        "temperature",
        "vibration",
        "current",
    )
    with pytest.raises(InvalidRequest, match="metric_name is required"):
        split_metric_names([" , "])
    with pytest.raises(InvalidRequest, match="at most 20"):
        split_metric_names([",".join(f"m{i}" for i in range(21))])


def test_cursor_round_trips_and_garbage_is_refused() -> None:
    cursor = Cursor(123, 456, 789, 1, 2, query_fingerprint(MACHINE, ["a"]))
    token = encode_cursor(CODEC, cursor)
    assert decode_cursor(CODEC, token) == cursor
    assert "=" not in token
    for bad in ("", "not a cursor", token[:-3], "WzIsMSwyXQ", encode_cursor(CODEC, cursor).upper()):
        with pytest.raises(InvalidRequest, match="invalid cursor"):
            decode_cursor(CODEC, bad)


def test_a_cursor_with_fields_no_page_gives_is_refused() -> None:
    """The unsigned cursor of earlier versions let anyone choose the fields, e.g. beyond 64-bit integers."""
    fields = [1, 2**70, 1, 1, 0, 2**70, query_fingerprint(MACHINE, ["t"])]
    unsigned = base64.urlsafe_b64encode(json.dumps(fields).encode()).rstrip(b"=")
    with pytest.raises(InvalidRequest, match="invalid cursor"):
        decode_cursor(CODEC, unsigned.decode())
    other_key = CursorCodec.from_secret("another-deployment-" + "y" * 32)
    with pytest.raises(InvalidRequest, match="invalid cursor"):
        decode_cursor(CODEC, encode_cursor(other_key, Cursor(1, 2, 3, 4, 5, "f")))


def test_defaults_are_the_last_hour_of_raw_points() -> None:
    query = resolve_query(
        machine_id=MACHINE,
        metric_names=["t"],
        start=None,
        end=None,
        interval=None,
        max_points=None,
        limit=1000,
        cursor=None,
        cursors=CODEC,
        now_us=NOW,
    )
    assert (query.start_us, query.end_us, query.interval_us) == (NOW - HOUR_US, NOW, None)


def test_offsets_are_converted_to_utc() -> None:
    query = resolve_query(
        machine_id=MACHINE,
        metric_names=["t"],
        start="2026-04-04T12:00:00+02:00",
        end="2026-04-04T10:30:00Z",
        interval="1m",
        max_points=None,
        limit=1000,
        cursor=None,
        cursors=CODEC,
        now_us=NOW,
    )
    assert (query.start_us, query.end_us) == (us("2026-04-04T10:00:00Z"), us("2026-04-04T10:30:00Z"))


def _resolve(**overrides: object) -> None:
    values: dict[str, object] = {
        "machine_id": MACHINE,
        "metric_names": ["t"],
        "start": None,
        "end": None,
        "interval": None,
        "max_points": None,
        "limit": 1000,
        "cursor": None,
        "cursors": CODEC,
        "now_us": NOW,
    }
    values.update(overrides)
    resolve_query(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"start": "2026-04-04T11:00:00Z", "end": "2026-04-04T10:00:00Z"}, "end must be after start"),
        ({"start": "2026-04-04T10:00:00Z", "end": "2026-04-04T10:00:00Z"}, "end must be after start"),
        ({"start": "2026-04-04T10:00:00"}, "no time zone"),
        ({"end": "yesterday"}, "not an ISO 8601"),
        ({"start": "2026-01-01T00:00:00Z", "end": "2026-03-01T00:00:00Z"}, "range too long for raw points"),
        ({"start": "2024-01-01T00:00:00Z", "end": "2026-03-01T00:00:00Z", "interval": "1d"}, "range too long"),
        ({"start": "2026-01-01T00:00:00Z", "end": "2026-03-01T00:00:00Z", "interval": "10s"}, "at most 10000"),
        ({"interval": "1m", "max_points": 500}, "either interval or max_points"),
        ({"interval": "1q"}, "unknown unit"),
        ({"cursor": "garbage!"}, "invalid cursor"),
        ({"interval": "1m", "cursor": "x"}, "cursor applies to raw points"),
        ({"limit": 0}, "limit"),
        ({"metric_names": []}, "metric_name is required"),
        ({"metric_names": ["t\x00"]}, "not a metric name"),
        ({"metric_names": ["t\nu"]}, "not a metric name"),
        ({"metric_names": ["t", "x" * 65]}, "not a metric name"),
        ({"end": "0001-01-01T00:00:00Z"}, "end must be after start"),
        ({"start": "9999-12-31T23:59:59.999999Z"}, "end must be after start"),
        ({"end": "0001-01-01T00:30:00+01:00"}, "out of range"),
    ],
)
def test_bad_queries_say_why(overrides: dict[str, object], fragment: str) -> None:
    with pytest.raises(InvalidRequest, match=fragment):
        _resolve(**overrides)


def test_export_allows_more_buckets_than_a_json_answer() -> None:
    window = {"start": "2026-01-01T00:00:00Z", "end": "2026-03-01T00:00:00Z", "interval": "10s"}
    resolve_query(
        machine_id=MACHINE,
        metric_names=["t"],
        max_points=None,
        limit=1000,
        cursor=None,
        cursors=CODEC,
        now_us=NOW,
        export=True,
        **window,
    )


def test_cursor_pins_its_query() -> None:
    cursor = encode_cursor(CODEC, Cursor(5, 6, 7, NOW - HOUR_US, NOW, query_fingerprint(MACHINE, ["t"])))
    query = resolve_query(
        machine_id=MACHINE,
        metric_names=["t"],
        start=None,
        end=None,
        interval=None,
        max_points=None,
        limit=10,
        cursor=cursor,
        cursors=CODEC,
        now_us=NOW + 5 * MINUTE_US,
    )
    assert (query.start_us, query.end_us) == (NOW - HOUR_US, NOW)
    with pytest.raises(InvalidRequest, match="different query"):
        _resolve(metric_names=["t", "u"], cursor=cursor)
    with pytest.raises(InvalidRequest, match="differ from the cursor"):
        _resolve(cursor=cursor, start="2026-04-04T10:00:00Z")


def test_csv_lines_quote_only_what_needs_it() -> None:
    raw: list[RawPoint] = [("temp", us("2026-04-04T10:00:00Z"), 1.5, "deg, C", 1), ("temp", 1_500_000, 2.0, "C", 2)]
    assert raw_csv_lines(MACHINE, raw) == (
        f'2026-04-04T10:00:00Z,{MACHINE},temp,1.5,"deg, C"\r\n1970-01-01T00:00:01.5Z,{MACHINE},temp,2.0,C\r\n'
    )
    bucket = BucketPoint("temp", 0, 2.5, 1.0, 4.0, 3, 4.0)
    assert bucket_csv_lines(MACHINE, [bucket]) == f"1970-01-01T00:00:00Z,{MACHINE},temp,2.5,1.0,4.0,3,4.0\r\n"


@pytest.mark.parametrize(
    ("start", "end", "interval", "window"),
    [
        ("9999-12-31T23:30:00Z", None, None, ("9999-12-31T23:30:00Z", "9999-12-31T23:59:59.999999Z")),
        (None, "0001-01-01T00:30:00Z", None, ("0001-01-01T00:00:00Z", "0001-01-01T00:30:00Z")),
        (None, "0001-01-01T00:30:00Z", "1m", ("0001-01-01T00:00:00Z", "0001-01-01T00:30:00Z")),
        ("9999-12-31T23:30:00Z", None, "1m", ("9999-12-31T23:30:00Z", "9999-12-31T23:59:59.999999Z")),
    ],
)
def test_default_bounds_stop_at_the_ends_of_time(
    start: str | None, end: str | None, interval: str | None, window: tuple[str, str]
) -> None:
    """A default end (start + 1h) or start (end - 1h) past what a timestamp can say is cut to the last or first."""
    query = resolve_query(
        machine_id=MACHINE,
        metric_names=["t"],
        start=start,
        end=end,
        interval=interval,
        max_points=None,
        limit=1000,
        cursor=None,
        cursors=CODEC,
        now_us=NOW,
        export=True,
    )
    assert (format_micros(query.start_us), format_micros(query.end_us)) == window

"""The one-step batch decoder accepts exactly the batches in which every item is valid, with the same result."""

from __future__ import annotations

import json
import uuid

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from haltless.core.names import text_problem
from haltless.core.readings import (
    MAX_READINGS_PER_REQUEST,
    Reading,
    decode_valid_batch,
    validate_reading,
)
from haltless.core.timefmt import format_micros as _iso
from haltless.server.service.ingest import parse_body

NOW = 1_780_000_000_000_000  # 2026-05-28, microseconds
SKEW = 300_000_000
IDS = [str(uuid.UUID(int=n * 7919 + 1)) for n in range(4)]

# Each field: the edges of what is valid, sampled often, and arbitrary values now and then. Lone surrogates
# ("\ud800" is valid JSON but no text) and control characters are refused in every string field; a no-break
# space or a zero-width space is not printable, but is text.
EDGES: dict[str, list[object]] = {
    "machine_id": [
        IDS[0].upper(),
        IDS[0].replace("-", ""),
        "{" + IDS[0] + "}",
        "urn:uuid:" + IDS[0],
        "",
        "x" * 36,
        IDS[0][:-1] + "\ud800",
        IDS[0] + "\x00",
        5,
    ],
    "metric_name": [
        "temperature",
        "a:b-c_d/e.f",
        "x" * 64,
        "x" * 65,
        "",
        "a b",
        "température",
        "t\x00",
        "t\n",
        "t\ud800",
        "\udfff",
        5,
    ],
    "value": [0, -0.0, 1e308, -1e308, 2**53 + 1, 10**308, 10**309, True, False, "1", None, 5e-324],
    "unit": [
        None,
        "",
        "x" * 32,
        "x" * 33,
        "°C\x00",
        "é" * 32,
        "é" * 33,
        "\ud800",
        "°C\udc00",
        "\U0001f321",
        "\x01",
        "C\t",
        "\x7f",
        "\x85",
        "\xa0C",
        "\u200bC",
        5,
    ],
    "timestamp": [
        _iso(NOW + SKEW),
        _iso(NOW + SKEW + 1),
        _iso(NOW + 10 * SKEW),
        "1970-01-01T00:00:00Z",
        "1969-12-31T23:59:59.999999Z",
        "2026-05-28T10:00:00",
        "2026-05-28T10:00:00+02:00",
        "2026-05-28",
        "yesterday",
        "9999-12-31T23:59:59-23:59",
        "0001-01-01T00:00:00+23:59",
        "2026-05-28T10:00:00Z\ud800",
        "2026-05-28T10:00:00\x00Z",
        None,
        5,
    ],
    "reading_id": ["", "x" * 128, "x" * 129, "a\x00b", "\ud800", "r-\udbff\udfff", "r\n", "r\x9f", "r\xa0", 5, None],
}
# Text with what must be refused (control characters, lone surrogates) and what must not (other unprintables).
_hostile_text = st.text(st.characters(categories=["Cc", "Cs", "Cf", "Zs", "Ll", "Nd"]), max_size=40)
_machine_id = st.one_of(
    st.sampled_from(IDS),
    st.sampled_from(EDGES["machine_id"]),
    st.text(max_size=40),
    _hostile_text,
    st.integers(),
    st.none(),
)
_metric_name = st.one_of(
    st.sampled_from(EDGES["metric_name"]),
    st.text(max_size=70),
    _hostile_text,
    st.integers(),
)
_value = st.one_of(
    st.sampled_from(EDGES["value"]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(),
)
_unit = st.one_of(st.sampled_from(EDGES["unit"]), st.text(max_size=40), _hostile_text)


_timestamp = st.one_of(
    st.sampled_from(EDGES["timestamp"]),
    st.integers(0, NOW + 2 * SKEW).map(_iso),
    st.text(max_size=30),
    _hostile_text,
    st.integers(),
)
_reading_id = st.one_of(st.sampled_from(EDGES["reading_id"]), st.text(max_size=140), _hostile_text)
_valid_item = st.fixed_dictionaries(
    {
        "machine_id": st.sampled_from(IDS),
        "metric_name": st.sampled_from(["temperature", "vibration.rms"]),
        "value": st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12) | st.integers(-9, 9),
    },
    optional={
        "unit": st.sampled_from(["°C", "mm/s", ""]) | st.none(),
        "timestamp": st.integers(0, NOW).map(_iso) | st.none(),
        "reading_id": st.text(min_size=1, max_size=20).filter(lambda t: t.isprintable()) | st.none(),
    },
)


_ANY_FIELD = {
    "machine_id": _machine_id,
    "metric_name": _metric_name,
    "value": _value,
    "unit": _unit,
    "timestamp": _timestamp,
    "reading_id": _reading_id,
    "colour": st.just("red"),
}


@st.composite
def _item(draw: st.DrawFn) -> object:
    """A valid item with (mostly) one field changed to anything, or dropped; now and then not an object."""
    item: dict[str, object] = dict(draw(_valid_item))
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(st.one_of(st.integers(), st.lists(st.integers(), max_size=2), st.text(max_size=3)))
    for _ in range(1 if kind < 8 else 2):
        field = draw(st.sampled_from(sorted(_ANY_FIELD)))
        if draw(st.booleans()) and field in item:
            del item[field]
        else:
            item[field] = draw(_ANY_FIELD[field])
    return item


def item_by_item(body: bytes) -> list[object]:
    """What the server's item-by-item path makes of a body: parse_body, then validate_reading per item."""
    return [validate_reading(index, item, NOW, SKEW) for index, item in enumerate(parse_body(body))]


def json_body(items: object, ascii_only: bool = False) -> bytes:
    """The body a client sends: UTF-8 JSON, with `\\uXXXX` escapes where it must (lone surrogates) or wants."""
    try:
        text = json.dumps({"readings": items}, ensure_ascii=ascii_only, allow_nan=False)  # big ints too
        return text.encode()
    except UnicodeEncodeError:  # a lone surrogate: valid JSON only as an escape
        return json.dumps({"readings": items}, ensure_ascii=True, allow_nan=False).encode()


def storable(reading: Reading) -> bool:
    """Every text of the reading can be stored on either backend: no control characters, no lone surrogates."""
    texts = [reading.machine_id, reading.metric_name, reading.unit, reading.reading_id or ""]
    return all(text_problem(text) is None for text in texts)


@settings(max_examples=600)
@given(st.lists(st.one_of(_item(), _valid_item), max_size=4), st.booleans())
def test_the_decoder_accepts_only_all_valid_batches_and_agrees_with_item_by_item(
    items: list[object], ascii_only: bool
) -> None:
    body = json_body(items, ascii_only)
    slow = item_by_item(body)
    fast = decode_valid_batch(body, NOW, SKEW)
    assert all(storable(outcome) for outcome in slow if isinstance(outcome, Reading))
    all_valid = all(isinstance(outcome, Reading) for outcome in slow)
    canonical = all(isinstance(item, dict) and item.get("machine_id") in IDS for item in items)
    if fast is not None:
        assert all_valid
        assert fast == slow
    else:
        # Only two reasons to decline: an item is not valid, or an id is valid but not written canonically.
        assert not (all_valid and canonical)


@given(st.lists(_valid_item, min_size=1, max_size=20))
def test_valid_batches_take_the_one_step_path(items: list[object]) -> None:
    body = orjson.dumps({"readings": items})
    assert decode_valid_batch(body, NOW, SKEW) == item_by_item(body)


@pytest.mark.parametrize(("field", "value"), [(field, value) for field, values in EDGES.items() for value in values])
def test_each_edge_value_alone(field: str, value: object) -> None:
    item = {"machine_id": IDS[1], "metric_name": "temperature", "value": 70.5, field: value}
    body = json_body([item])
    slow = item_by_item(body)
    assert not isinstance(slow[0], Reading) or storable(slow[0])
    fast = decode_valid_batch(body, NOW, SKEW)
    if isinstance(slow[0], Reading) and (field != "machine_id" or value in IDS):
        assert fast == slow
    else:
        assert fast is None


_ONE = IDS[0].encode()


@pytest.mark.parametrize(
    "body",
    [
        b'{"readings": [{"machine_id": "%s", "metric_name": "t", "value": NaN}]}' % _ONE,
        b'{"readings": [{"machine_id": "%s", "metric_name": "t", "value": 1e400}]}' % _ONE,
        b'{"readings": [{"machine_id": "%s", "metric_name": "t", "value": %s}]}' % (_ONE, b"9" * 400),
        b'{"readings": [], "extra": 1}',
        b'{"readings": {}}',
        b"[]",
        b"not json",
        b'{"readings": [{"machine_id": "%s", "metric_name": "t", "value": 1}]' % _ONE,
        json.dumps(
            {"readings": [{"machine_id": IDS[0], "metric_name": "t", "value": 1}] * (MAX_READINGS_PER_REQUEST + 1)}
        ).encode(),
    ],
)
def test_bodies_left_to_the_item_by_item_path(body: bytes) -> None:
    assert decode_valid_batch(body, NOW, SKEW) is None


@pytest.mark.parametrize("values", [b'1, "value": true', b'true, "value": 1', b'1, "value": 2'])
def test_duplicate_keys_are_read_as_the_item_by_item_path_reads_them(values: bytes) -> None:
    body = b'{"readings": [{"machine_id": "%s", "metric_name": "t", "value": %s}]}' % (_ONE, values)
    fast = decode_valid_batch(body, NOW, SKEW)
    assert fast is None or fast == item_by_item(body)

"""Event ids: the batch stamper writes the same text as the one-event form, and keys read back in order."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from haltless.core.event_ids import event_key_of, parse_event_id, with_event_id, with_sequential_ids

# Events as the bus gets them: encoded without an id (the stamper appends it). Hypothesis also draws string
# constants from our source, so "event_id" itself would come up as a key (and did, failing a CI run).
_EVENTS = st.lists(
    st.dictionaries(
        st.text(max_size=8).filter(lambda key: key != "event_id"),
        st.one_of(st.text(max_size=20), st.integers(-(2**53), 2**53), st.floats(allow_nan=False, allow_infinity=False)),
    ).map(lambda d: orjson.dumps({"type": "sensor_update", **d}).decode()),
    max_size=20,
)


@given(_EVENTS, st.integers(0, 2**45), st.integers(1, 2**40))
def test_sequential_ids_match_one_at_a_time(events: list[str], millis: int, first: int) -> None:
    stamped = with_sequential_ids(events, millis, first)
    assert stamped == [with_event_id(event, f"{millis}-{first + i}") for i, event in enumerate(events)]
    assert [event_key_of(event) for event in stamped] == [(millis, first + i) for i in range(len(events))]
    for i, (original, event) in enumerate(zip(events, stamped, strict=True)):
        decoded = orjson.loads(event)
        assert decoded.pop("event_id") == f"{millis}-{first + i}"
        assert decoded == orjson.loads(original)


def test_parse_event_id_refuses_what_is_not_ours() -> None:
    assert parse_event_id("1764300000000-7") == (1764300000000, 7)
    for bad in ("", "7", "a-1", "1-b", "-1", "1-", 7, None, "1" * 70 + "-1"):
        assert parse_event_id(bad) is None

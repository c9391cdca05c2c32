"""Event encoding: the hand-written sensor_update template says exactly what orjson would."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from haltless.core import wire
from haltless.core.event_ids import event_key_of
from haltless.core.readings import Reading
from haltless.core.timefmt import format_micros


def _reference(machine_id: str, metric_name: str, value: float, unit: str, ts: int) -> str:
    return orjson.dumps(
        {
            "type": "sensor_update",
            "machine_id": machine_id,
            "metric_name": metric_name,
            "value": value,
            "unit": unit,
            "timestamp": format_micros(ts),
        }
    ).decode()


@settings(max_examples=500)
@given(
    machine_id=st.uuids().map(str),
    metric_name=st.from_regex(r"[A-Za-z0-9_.:/-]{1,64}", fullmatch=True),
    value=st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**53), 2**53).map(float),
    unit=st.text(max_size=32),
    ts=st.integers(0, 2**62 // 1000),
)
def test_sensor_update_is_the_same_json_as_orjson_writes(
    machine_id: str, metric_name: str, value: float, unit: str, ts: int
) -> None:
    encoded = wire.sensor_update(machine_id, metric_name, value, unit, ts)
    assert encoded == _reference(machine_id, metric_name, value, unit, ts)
    assert list(orjson.loads(encoded)) == ["type", "machine_id", "metric_name", "value", "unit", "timestamp"]


_READING = st.builds(
    Reading,
    index=st.just(0),
    machine_id=st.uuids().map(str),
    metric_name=st.sampled_from(["temperature", "vibration.rms"]),
    value=st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**53), 2**53).map(float),
    unit=st.text(max_size=32),
    ts=st.integers(0, 2**62 // 1000),
    reading_id=st.none(),
)


@settings(max_examples=300)
@given(st.lists(_READING, max_size=30))
def test_a_batch_of_sensor_updates_is_each_reading_s_sensor_update(readings: list[Reading]) -> None:
    expected = [wire.sensor_update(r.machine_id, r.metric_name, r.value, r.unit, r.ts) for r in readings]
    assert wire.sensor_updates(readings) == expected


def test_sensor_update_escapes_what_json_must() -> None:
    encoded = wire.sensor_update("m", "t", 1e-05, 'deg "C"\\\n\x00é', 0)
    assert orjson.loads(encoded)["unit"] == 'deg "C"\\\n\x00é'
    assert orjson.loads(encoded)["value"] == 1e-05
    assert encoded == _reference("m", "t", 1e-05, 'deg "C"\\\n\x00é', 0)


def test_control_messages_carry_no_event_id() -> None:
    """heartbeat and resync_required are encoded here with the events, and are never resumed from."""
    assert orjson.loads(wire.resync_required('lost "some"')) == {"type": "resync_required", "reason": 'lost "some"'}
    assert orjson.loads(wire.heartbeat(0)) == {"type": "heartbeat", "server_time": format_micros(0)}
    assert event_key_of(wire.resync_required("x")) is None and event_key_of(wire.heartbeat(0)) is None


def test_alert_flapping_is_the_bytes_it_always_was() -> None:
    """The event moved here from core/flapping.py (all events are encoded in wire.py): the same bytes, in the
    guide's field order (docs/websocket.md, "Extension: alert_flapping")."""
    encoded = wire.alert_flapping("a-1", 'm "2"', "r-3", 4, 1_775_298_600_123_456)
    assert encoded == (
        '{"type":"alert_flapping","alert_id":"a-1","machine_id":"m \\"2\\"","rule_id":"r-3",'
        '"alerts_in_window":4,"since":"2026-04-04T10:30:00.123456Z"}'
    )
    assert wire.alert_flapping("a", "m", "r", 4, 0).endswith('"since":"1970-01-01T00:00:00Z"}')


def test_a_heartbeat_formats_the_time_without_filling_the_timestamp_cache() -> None:
    format_micros.cache_clear()  # a full cache would not grow either
    now = 1_800_000_000_123_457
    beats = [orjson.loads(wire.heartbeat(now + i)) for i in range(3)]
    assert [beat["server_time"] for beat in beats] == [format_micros.__wrapped__(now + i) for i in range(3)]
    assert beats[0] == {"type": "heartbeat", "server_time": "2027-01-15T08:00:00.123457Z"}
    # Each socket's first heartbeat has its own microsecond: cached, each would keep an entry (bench.socket_memory).
    assert format_micros.cache_info().currsize == 0

"""OPC UA notifications as readings, pure: quality, values, timestamps, derived ids, the browse snippet."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime

import pytest

from haltless.agent.captured import CapturedReading
from haltless.agent.sources.opcua_nodes import (
    BrowsedVariable,
    DataChange,
    NodeMapping,
    datachange_reading,
    metric_name,
    node_value,
    quality,
    render_snippet,
)

MACHINE = "6f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f"
MAPPING = NodeMapping("ns=2;s=Press1.Temperature", MACHINE, "temperature", "celsius")
MEASURED = datetime(2026, 11, 28, 10, 0, 0, 250_000, tzinfo=UTC)
MEASURED_US = 1_795_860_000_250_000


def _change(value: object = 71.5, status: int = 0, source: datetime | None = MEASURED) -> DataChange:
    return DataChange(value, status, source, datetime(2026, 11, 28, 10, 0, 1, tzinfo=UTC))


def test_status_code_severity() -> None:
    assert quality(0x0000_0000) == "good"
    assert quality(0x0000_0400) == "good"  # Good with an info bit (overflow)
    assert quality(0x408F_0000) == "uncertain"  # UncertainLastUsableValue
    assert quality(0x808B_0000) == "bad"  # BadSensorFailure
    assert quality(0xC000_0000) == "bad"  # reserved severity: treated as Bad


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(71.5, 71.5), (3, 3.0), (True, 1.0), (False, 0.0), ("71.5", None), (float("nan"), None), ([1, 2], None)],
)
def test_numbers_and_booleans_are_values(raw: object, expected: float | None) -> None:
    assert node_value(raw) == expected


def test_a_good_value_is_a_reading_at_its_source_time() -> None:
    reading = datachange_reading(MAPPING, _change(), received_us=1, accept_uncertain=False)
    assert isinstance(reading, CapturedReading)
    assert (reading.machine_id, reading.metric_name, reading.value, reading.unit) == (
        MACHINE,
        "temperature",
        71.5,
        "celsius",
    )
    assert reading.ts_us == MEASURED_US
    assert reading.reading_id.startswith("opcua:")


def test_the_same_value_at_the_same_time_is_the_same_reading() -> None:
    """What a new subscription sends first after a reconnect is the value the agent already has."""
    first = datachange_reading(MAPPING, _change(), received_us=1, accept_uncertain=False)
    again = datachange_reading(MAPPING, _change(), received_us=999, accept_uncertain=False)
    later = datachange_reading(
        MAPPING, _change(source=MEASURED.replace(microsecond=251_000)), received_us=1, accept_uncertain=False
    )
    other_node = datachange_reading(
        NodeMapping("ns=2;s=Press2.Temperature", MACHINE, "temperature", "celsius"),
        _change(),
        received_us=1,
        accept_uncertain=False,
    )
    assert isinstance(first, CapturedReading) and isinstance(again, CapturedReading)
    assert isinstance(later, CapturedReading) and isinstance(other_node, CapturedReading)
    assert first.reading_id == again.reading_id
    assert len({first.reading_id, later.reading_id, other_node.reading_id}) == 3


def test_without_a_source_time_the_server_time_counts() -> None:
    reading = datachange_reading(MAPPING, _change(source=None), received_us=1, accept_uncertain=False)
    assert isinstance(reading, CapturedReading)
    assert reading.ts_us == MEASURED_US - 250_000 + 1_000_000


def test_without_any_timestamp_the_reading_is_stamped_on_arrival_with_a_fresh_id() -> None:
    change = DataChange(71.5, 0, None, None)
    first = datachange_reading(MAPPING, change, received_us=42, accept_uncertain=False)
    second = datachange_reading(MAPPING, change, received_us=42, accept_uncertain=False)
    assert isinstance(first, CapturedReading) and isinstance(second, CapturedReading)
    assert first.ts_us == 42
    assert first.reading_id != second.reading_id


def test_naive_timestamps_are_utc() -> None:
    naive = datachange_reading(
        MAPPING, _change(source=MEASURED.replace(tzinfo=None)), received_us=1, accept_uncertain=False
    )
    assert isinstance(naive, CapturedReading)
    assert naive.ts_us == MEASURED_US


def test_bad_quality_is_skipped_and_uncertain_only_when_accepted() -> None:
    assert datachange_reading(MAPPING, _change(status=0x808B_0000), 1, accept_uncertain=True) == (
        "ns=2;s=Press1.Temperature: quality bad"
    )
    uncertain = _change(status=0x408F_0000)
    assert datachange_reading(MAPPING, uncertain, 1, accept_uncertain=False) == (
        "ns=2;s=Press1.Temperature: quality uncertain"
    )
    assert isinstance(datachange_reading(MAPPING, uncertain, 1, accept_uncertain=True), CapturedReading)


def test_a_value_that_is_not_a_number_is_skipped_with_the_reason() -> None:
    outcome = datachange_reading(MAPPING, _change(value="running"), 1, accept_uncertain=False)
    assert outcome == "ns=2;s=Press1.Temperature: value 'running' is not a finite number or a boolean"


@pytest.mark.parametrize(
    ("browse_name", "metric"),
    [
        ("2:Temperature", "temperature"),
        ("2:SpindleSpeed", "spindle_speed"),
        ("3:Motor Current (A)", "motor_current_a"),
        ("Oil.Pressure", "oil.pressure"),
        ("2:Übertemperatur", "ubertemperatur"),
        ("2:°", "value"),
        ("2:" + "x" * 100, "x" * 64),
    ],
)
def test_metric_names_fit_the_servers_alphabet(browse_name: str, metric: str) -> None:
    assert metric_name(browse_name) == metric


def test_the_snippet_is_a_valid_source_block() -> None:
    variables = [
        BrowsedVariable(("2:Press1", "2:Temperature"), "ns=2;s=Press1.Temperature", "Double", "°C"),
        BrowsedVariable(("2:Press1", "2:Running"), "ns=2;i=7", "Boolean"),
        BrowsedVariable(('2:Line "A"', "2:Pump", "2:Flow"), 'ns=2;s=Pump "A".Flow', "Float"),
    ]
    text = render_snippet(['type = "opcua"', 'endpoint = "opc.tcp://plc:4840"'], variables)
    parsed = tomllib.loads(text)
    (source,) = parsed["sources"]
    assert source["endpoint"] == "opc.tcp://plc:4840"
    assert source["nodes"] == [
        {"node_id": "ns=2;s=Press1.Temperature", "machine": "Press1", "metric": "temperature", "unit": "°C"},
        {"node_id": "ns=2;i=7", "machine": "Press1", "metric": "running"},
        {"node_id": 'ns=2;s=Pump "A".Flow', "machine": "Pump", "metric": "flow"},
    ]
    assert '#   "Press1" = "<machine UUID>"' in text
    assert "/0:Objects/2:Press1/2:Temperature (Double)" in text

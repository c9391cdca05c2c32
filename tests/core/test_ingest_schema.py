"""The ingest body's published schema (OpenAPI) is generated from the decoder's types: every limit it states is
the limit both validation paths enforce, one character or one reading either side of it."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest

from haltless.core.readings import Rejection, decode_valid_batch, ingest_body_schema, validate_reading
from haltless.errors import PayloadTooLarge
from haltless.server.routes.sensor_data import INGEST_BODY_SCHEMA
from haltless.server.service.ingest import parse_body

NOW = 1_780_000_000_000_000
SKEW = 300_000_000
SCHEMA = ingest_body_schema()
ITEM = SCHEMA["properties"]["readings"]["items"]


def _string_branch(field: str) -> dict[str, Any]:
    """A field's string schema (optional fields are `anyOf` a string and null)."""
    prop: dict[str, Any] = ITEM["properties"][field]
    return next(branch for branch in prop.get("anyOf", [prop]) if branch.get("type") == "string")


def _reading(**fields: Any) -> dict[str, Any]:
    return {"machine_id": str(uuid.uuid4()), "metric_name": "temperature", "value": 1.5} | fields


def _both_accept(item: dict[str, Any]) -> bool:
    """Whether the item-by-item path and the fast decoder accept the item; failing when they disagree."""
    one_by_one = not isinstance(validate_reading(0, item, NOW, SKEW), Rejection)
    decoded = decode_valid_batch(orjson.dumps({"readings": [item]}), NOW, SKEW) is not None
    assert one_by_one or not decoded, f"the fast path took what the item-by-item path refuses: {item}"
    return one_by_one


def test_the_route_publishes_the_generated_schema() -> None:
    assert INGEST_BODY_SCHEMA == SCHEMA


@pytest.mark.parametrize("field", ["metric_name", "unit", "reading_id"])
def test_each_stated_length_is_the_enforced_one(field: str) -> None:
    branch = _string_branch(field)
    longest = branch["maxLength"]
    assert _both_accept(_reading(**{field: "a" * longest}))
    assert not _both_accept(_reading(**{field: "a" * (longest + 1)}))
    if branch.get("minLength") == 1:
        assert not _both_accept(_reading(**{field: ""}))


def test_required_fields_and_no_others() -> None:
    for field in ITEM["required"]:
        item = _reading()
        del item[field]
        assert not _both_accept(item), field
    assert ITEM["additionalProperties"] is False
    assert not _both_accept(_reading(colour="red"))
    optional = set(ITEM["properties"]) - set(ITEM["required"])
    assert optional == {"unit", "timestamp", "reading_id"}
    assert _both_accept(_reading(**dict.fromkeys(optional)))  # stated nullable: null is taken as absent


def test_the_stated_patterns_and_formats_are_enforced() -> None:
    assert not _both_accept(_reading(metric_name="temp erature"))  # outside the stated pattern
    assert not _both_accept(_reading(unit="°C\x07"))  # a control character
    assert not _both_accept(_reading(machine_id="not-a-uuid"))
    assert not _both_accept(_reading(timestamp="yesterday"))
    assert ITEM["properties"]["machine_id"]["format"] == "uuid"
    assert _string_branch("timestamp")["format"] == "date-time"


def test_the_stated_batch_size_is_the_enforced_one() -> None:
    most = SCHEMA["properties"]["readings"]["maxItems"]
    assert len(parse_body(orjson.dumps({"readings": [_reading()] * most}))) == most
    with pytest.raises(PayloadTooLarge):
        parse_body(orjson.dumps({"readings": [_reading()] * (most + 1)}))

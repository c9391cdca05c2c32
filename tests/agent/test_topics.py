"""Topic templates and payload forms, the pure part of the MQTT source."""

from __future__ import annotations

import pytest

from haltless.agent.backoff import Backoff
from haltless.agent.sources.payloads import PayloadError, parse_payload
from haltless.agent.sources.topics import TopicTemplate


def test_placeholders_subscribe_as_single_level_wildcards() -> None:
    template = TopicTemplate.parse("plant/{line}/+/{machine}/{metric}")
    assert template.subscription_filter == "plant/+/+/+/+"
    assert template.names == {"line", "machine", "metric"}
    assert template.match("plant/l1/x/press-1/temperature") == {
        "line": "l1",
        "machine": "press-1",
        "metric": "temperature",
    }
    assert template.match("plant/l1/x/press-1") is None
    assert template.match("plant/l1/x/press-1/temperature/extra") is None
    assert template.match("other/l1/x/press-1/temperature") is None


def test_multi_level_wildcard_matches_the_rest_including_nothing() -> None:
    template = TopicTemplate.parse("plant/{machine}/#")
    assert template.subscription_filter == "plant/+/#"
    assert template.match("plant/press-1") == {"machine": "press-1"}
    assert template.match("plant/press-1/a/b") == {"machine": "press-1"}


@pytest.mark.parametrize("topic", ["", "a/#/b", "a/{x}/{x}", "a/b{x}", "a/x+"])
def test_malformed_templates_are_refused(topic: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        TopicTemplate.parse(topic)


def test_payload_forms() -> None:
    assert parse_payload(b'{"value": 71.5}', "value").value == 71.5
    assert parse_payload(b"2.25", "value").value == 2.25
    assert parse_payload(b" +11.5\n", "value").value == 11.5
    full = parse_payload(b'{"v": "3", "unit": "bar", "timestamp": "2026-04-04T10:30:05Z", "reading_id": "r1"}', "v")
    assert (full.value, full.unit, full.ts_us, full.reading_id) == (3.0, "bar", 1775298605000000, "r1")
    assert parse_payload(b'{"value": 1, "ts": 1775298605.5}', "value").ts_us == 1775298605500000


@pytest.mark.parametrize("payload", [b"hot", b'{"temp": 1}', b'{"value": true}', b"NaN", b'{"value": 1, "ts": "soon"}'])
def test_unusable_payloads_say_why(payload: bytes) -> None:
    with pytest.raises(PayloadError):
        parse_payload(payload, "value")


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    backoff = Backoff(initial=1.0, maximum=8.0)
    delays = [backoff.next_delay() for _ in range(6)]
    for delay, base in zip(delays, [1, 2, 4, 8, 8, 8], strict=True):
        assert base / 2 <= delay <= base
    backoff.reset()
    assert backoff.next_delay() <= 1.0

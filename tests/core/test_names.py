"""The one rule for client text that is stored or looked up: no control characters, no lone surrogates."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from haltless.core.names import (
    MAX_METRIC_NAME_LENGTH,
    clean_text,
    shown,
    text_problem,
    valid_metric_name,
)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("a\x00b", "NUL"),
        ("\ud800", "surrogate (U+D800)"),
        ("x\udfff", "surrogate (U+DFFF)"),
        ("tab\there", "control characters (U+0009)"),
        ("line\n", "control characters (U+000A)"),
        ("\x1b[31mred", "control characters (U+001B)"),
        ("del\x7f", "control characters (U+007F)"),
        ("c1\x85", "control characters (U+0085)"),
        ("c1\x9f", "control characters (U+009F)"),
    ],
)
def test_control_characters_and_lone_surrogates_are_refused_with_a_reason(text: str, fragment: str) -> None:
    problem = text_problem(text)
    assert problem is not None
    assert fragment in problem
    with pytest.raises(ValueError, match=re.escape(fragment)):
        clean_text(text)


@pytest.mark.parametrize(
    "text",
    ["", "Press 1", "°C", "Hall\xa0B", "zero\u200bwidth", "right\u202eleft", "😀", "\U0001f9d1\u200d\U0001f527", "ﬁ"],
)
def test_other_text_is_accepted_even_when_not_printable(text: str) -> None:
    assert text_problem(text) is None
    assert clean_text(text) is text


@given(st.text())
def test_exactly_the_text_that_utf8_and_postgresql_can_hold_without_controls_is_clean(text: str) -> None:
    has_control = any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in text)
    assert (text_problem(text) is None) == (not has_control)


@given(st.text(st.characters(codec=None, categories=["Cs", "Cc", "Ll", "Zs"])))
def test_clean_text_always_encodes_as_utf8(text: str) -> None:
    if text_problem(text) is None:
        text.encode()


def test_shown_escapes_only_what_cannot_be_echoed() -> None:
    assert shown("colour") == "colour"
    assert shown("bad\ud800") == "'bad\\ud800'"
    assert shown("a\x00") == "'a\\x00'"
    shown("bad\ud800").encode()


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("temperature", True),
        ("a:b-c_d/e.f", True),
        ("x" * MAX_METRIC_NAME_LENGTH, True),
        ("x" * (MAX_METRIC_NAME_LENGTH + 1), False),
        ("", False),
        ("t\n", False),
        ("t\x00", False),
        ("a b", False),
        ("température", False),
        ("x" * 10_000_000, False),
    ],
)
def test_metric_names(name: str, valid: bool) -> None:
    assert valid_metric_name(name) is valid

"""Signed page cursors: what the server encoded comes back, anything else is a 422 "invalid cursor"."""

from __future__ import annotations

import base64

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from haltless.core.cursors import MAX_CURSOR_LENGTH, CursorCodec
from haltless.errors import InvalidRequest

SECRET = "deployment-secret-" + "s" * 32
CODEC = CursorCodec.from_secret(SECRET)
SHAPE = (int, str)


def test_round_trip_across_codecs_of_one_secret() -> None:
    """Every process of a deployment derives the same key from the JWT secret, so each reads the others' cursors."""
    token = CODEC.encode("alerts/1", (1_780_000_000_000_000, "a1"))
    assert CursorCodec.from_secret(SECRET).decode("alerts/1", token, SHAPE) == [1_780_000_000_000_000, "a1"]
    assert all(c.isascii() and (c.isalnum() or c in "-_.") for c in token)  # URL-safe, no padding


def _flip(token: str, at: int) -> str:
    replacement = "A" if token[at] != "A" else "B"
    return token[:at] + replacement + token[at + 1 :]


@pytest.mark.parametrize(
    "make",
    [
        lambda t: _flip(t, 2),  # the fields
        lambda t: _flip(t, len(t) - 2),  # the tag
        lambda t: t.split(".")[0],  # no tag
        lambda t: t + ".x",
        lambda t: t[:-4],
        lambda t: t.replace(".", "!"),
        lambda t: "",
        lambda t: "é" + t,
        lambda t: t + "A" * MAX_CURSOR_LENGTH,
        # An unsigned cursor of the earlier format, with fields no page gives.
        lambda t: base64.urlsafe_b64encode(orjson.dumps([1, 2**63, 0, 0, 0, 2**63, "f"])).decode().rstrip("="),
    ],
)
def test_tampered_tokens_are_invalid(make: object) -> None:
    token = CODEC.encode("history/1", (5, "x"))
    assert callable(make)
    with pytest.raises(InvalidRequest, match="invalid cursor"):
        CODEC.decode("history/1", make(token), SHAPE)


def test_a_cursor_of_one_kind_is_not_one_of_another() -> None:
    token = CODEC.encode("history/1", (5, "x"))
    with pytest.raises(InvalidRequest, match="invalid cursor"):
        CODEC.decode("alerts/1", token, SHAPE)


def test_another_deployments_cursor_is_invalid() -> None:
    token = CursorCodec.from_secret("another-secret-" + "o" * 32).encode("alerts/1", (5, "x"))
    with pytest.raises(InvalidRequest, match="invalid cursor"):
        CODEC.decode("alerts/1", token, SHAPE)


def test_fields_of_the_wrong_shape_are_invalid_even_when_signed() -> None:
    for fields in [(5,), (5, "x", 6), ("5", "x"), (True, "x")]:
        token = CODEC.encode("alerts/1", fields)
        with pytest.raises(InvalidRequest, match="invalid cursor"):
            CODEC.decode("alerts/1", token, SHAPE)


@given(st.text(max_size=300))
def test_no_text_gets_past_the_codec_but_an_invalid_cursor_error(text: str) -> None:
    with pytest.raises(InvalidRequest, match="invalid cursor"):
        CODEC.decode("history/1", text, SHAPE)

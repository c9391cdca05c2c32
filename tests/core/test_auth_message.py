"""Parsing of the dashboard socket's first message, without a socket."""

from __future__ import annotations

import pytest

from haltless.core.auth_message import AuthRefusal, AuthRequest, parse_first_message
from haltless.core.wire import CloseCode


@pytest.mark.parametrize(
    ("text", "token"),
    [
        ("abc.def.ghi", "abc.def.ghi"),
        ("  abc.def.ghi\n", "abc.def.ghi"),
        ('{"token": "abc.def.ghi"}', "abc.def.ghi"),
        ('{"token": "abc.def.ghi", "filters": {}}', "abc.def.ghi"),
        ('"abc.def.ghi"', "abc.def.ghi"),
        ("Bearer abc.def.ghi", "abc.def.ghi"),
    ],
)
def test_accepted_shapes(text: str, token: str) -> None:
    assert parse_first_message(text, None) == AuthRequest(token=token)


@pytest.mark.parametrize(
    ("text", "data", "code"),
    [
        (None, b"abc", CloseCode.UNSUPPORTED_DATA),
        (None, b"x" * 20000, CloseCode.MESSAGE_TOO_BIG),
        ("x" * 20000, None, CloseCode.MESSAGE_TOO_BIG),
        ("", None, CloseCode.INVALID_TOKEN),
        ("{", None, CloseCode.INVALID_TOKEN),
        ('{"token": 5}', None, CloseCode.INVALID_TOKEN),
        ("[1, 2]", None, CloseCode.INVALID_TOKEN),
        ('""', None, CloseCode.INVALID_TOKEN),
    ],
)
def test_refused_shapes(text: str | None, data: bytes | None, code: CloseCode) -> None:
    outcome = parse_first_message(text, data)
    assert isinstance(outcome, AuthRefusal)
    assert outcome.code == code

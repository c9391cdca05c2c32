"""The one rule for text a client may have stored or looked up: no control characters, no lone surrogates.

Names, labels, units, reading ids, emails and query parameters all go to the database (and into CSV, logs and
dashboards). PostgreSQL text cannot hold NUL, and neither database driver can encode a lone UTF-16 surrogate
(`"\\ud800"` is valid JSON, but no UTF-8 text), so such a string is refused here, with a reason, before it can
fail a whole request or batch further down. Control characters (U+0000-U+001F, U+007F-U+009F) are refused with
them: in a name they are invisible, break CSV rows and log lines, and are never meant.
"""

from __future__ import annotations

import functools
import re

MAX_METRIC_NAME_LENGTH = 64
METRIC_NAME_RULE = f"at most {MAX_METRIC_NAME_LENGTH} characters of letters, digits and _.:/-"
# Metric names go into URLs, CSV headers and rule lookups: keep them to a safe, readable alphabet. Matched
# whole (`fullmatch`): with `match`, Python's `$` let a trailing newline through. The pattern is also the one
# the rules API documents (pydantic's `$` is the end of the text).
METRIC_NAME_PATTERN = r"^[A-Za-z0-9_.:/-]+$"
_METRIC_NAME = re.compile(METRIC_NAME_PATTERN)

# C0 and C1 control characters, DEL, and the UTF-16 surrogate range (any surrogate in a Python str is a lone one
# from JSON's `\\uXXXX` escapes: a valid pair decodes to one character).
_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


# The same rule as patterns, for the OpenAPI schema (Python and ECMAScript regex syntax alike): a client reads
# there exactly which strings a field takes. `_STRIPPED` is what pydantic's `strip_whitespace` removes from both
# ends (Unicode White_Space; Python's own `\s` also takes U+001C-U+001F, which are refused, not stripped).
# (No surrogate range: a lone surrogate is no UTF-8 text, which JSON on the wire is; `text_problem` refuses one.)
_CONTROL = r"\x00-\x1f\x7f-\x9f"
_STRIPPED = r"\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
CLEAN_TEXT_PATTERN = rf"^[^{_CONTROL}]*$"


def stripped_text_pattern(*, required: bool) -> str:
    """The pattern of a clean text field whose ends are stripped of whitespace (non-blank when `required`)."""
    inner = rf"[^{_STRIPPED}{_CONTROL}](?:[^{_CONTROL}]*[^{_STRIPPED}{_CONTROL}])?"
    return rf"^[{_STRIPPED}]*{inner if required else f'(?:{inner})?'}[{_STRIPPED}]*$"


def stripped_email_pattern() -> str:
    """The pattern of an email field: stripped, then `local@domain` without whitespace, `@` or control characters."""
    part = rf"[^@{_STRIPPED}{_CONTROL}]+"
    return rf"^[{_STRIPPED}]*{part}@{part}[{_STRIPPED}]*$"


def text_problem(value: str) -> str | None:
    """Why `value` may not be stored or looked up (a phrase such as "must not contain ..."), or None if it may."""
    # Hot path (every unit and reading id of an ingest batch): printable text, nearly all of it, is settled by one
    # C call; what is not printable (a control character, a surrogate, but also a no-break space) is searched.
    if value.isprintable():
        return None
    found = _FORBIDDEN.search(value)
    if found is None:
        return None
    char = found.group()
    if char == "\x00":
        return "must not contain the NUL character"
    if "\ud800" <= char <= "\udfff":
        return f"must not contain a lone UTF-16 surrogate (U+{ord(char):04X}); send text as UTF-8"
    return f"must not contain control characters (U+{ord(char):04X})"


def clean_text(value: str) -> str:
    """`value` unchanged, or ValueError saying what is wrong with it (for pydantic validators)."""
    problem = text_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def shown(value: str) -> str:
    """`value` as it may be echoed in an error message: as is when clean, else escaped (Python repr).

    A client's own field names and values come back in error details; one holding a lone surrogate could not
    even be encoded as the JSON answer.
    """
    return value if text_problem(value) is None else repr(value)


def valid_metric_name(name: str) -> bool:
    """True when `name` is a metric name: non-empty, and METRIC_NAME_RULE."""
    # The length first: only short strings reach the cache (a client's 8 MiB name must not stay in memory).
    return 0 < len(name) <= MAX_METRIC_NAME_LENGTH and _valid_short_metric_name(name)


@functools.lru_cache(maxsize=4096)
def _valid_short_metric_name(name: str) -> bool:
    # Hot path: a fleet reports a handful of metric names, so each is checked once.
    return _METRIC_NAME.fullmatch(name) is not None

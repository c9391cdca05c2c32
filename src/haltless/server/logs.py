"""Logging setup. Query strings never reach a log line: a token put in a URL must not leak through logs."""

from __future__ import annotations

import logging
import re
from typing import Any

REDACTED = "?[redacted]"
# In a message already formatted, a query string runs to the next whitespace: an HTTP request target cannot
# hold one. Quotes and anything else are part of it (`?a='&token=…` once slipped past a pattern that
# stopped at a quote).
_QUERY_IN_TEXT = re.compile(r"\?\S*")


def _redact_argument(value: object) -> object:
    # uvicorn's access and WebSocket lines pass the path with its query as one argument: everything after its
    # first "?" is the query string, whatever characters it holds.
    if isinstance(value, int | float) or value is None:
        return value
    text = value if isinstance(value, str) else str(value)
    if "?" not in text:
        return value
    return text.split("?", 1)[0] + REDACTED


class RedactQueryStrings(logging.Filter):
    """Replaces the query string of every path in a record's arguments (and in a message without arguments)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(_redact_argument(arg) for arg in record.args)
        elif isinstance(record.args, dict) and record.args:
            record.args = {key: _redact_argument(arg) for key, arg in record.args.items()}
        elif isinstance(record.msg, str) and "?" in record.msg:
            record.msg = _QUERY_IN_TEXT.sub(REDACTED, record.msg)
        if not isinstance(record.msg, str) and "?" in str(record.msg):
            record.msg = _QUERY_IN_TEXT.sub(REDACTED, str(record.msg))
        return True


def uvicorn_log_config(level: str = "info") -> dict[str, Any]:
    """uvicorn's logging config, with every handler filtering query strings."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact": {"()": RedactQueryStrings}},
        "formatters": {
            "default": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        },
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "filters": ["redact"],
                "stream": "ext://sys.stderr",
            },
        },
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": level.upper(), "propagate": False},
            "uvicorn.error": {"level": level.upper()},
            "uvicorn.access": {"handlers": ["default"], "level": level.upper(), "propagate": False},
            "haltless": {"handlers": ["default"], "level": level.upper(), "propagate": False},
        },
    }

"""Logging setup. Query strings never reach a log line: a token put in a URL must not leak through logs."""

from __future__ import annotations

import logging
import re
from typing import Any

_QUERY = re.compile(r"\?[^\s\"']*")


def _redact(value: object) -> object:
    if isinstance(value, str) and "?" in value:
        return _QUERY.sub("?[redacted]", value)
    return value


class RedactQueryStrings(logging.Filter):
    """Replaces the query string of every path in a record's message and arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and "?" in record.msg:
            record.msg = _QUERY.sub("?[redacted]", record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redact(arg) for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {key: _redact(arg) for key, arg in record.args.items()}
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

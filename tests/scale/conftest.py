"""The scale-out tests' fixtures (a fresh PostgreSQL database, server processes) for every module here."""

from __future__ import annotations

from tests.scale.test_scale_out import pg_url, processes

__all__ = ["pg_url", "processes"]

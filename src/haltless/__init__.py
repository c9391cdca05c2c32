"""Haltless: keeps industrial machines from halting unexpectedly."""

from __future__ import annotations

__version__ = "0.3.0"

"""What the agent has done since it started, and the one-line status it prints every few seconds."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass(slots=True)
class AgentStats:
    """Counters shared by the sources, the buffer and the uplink (one event loop, so no locks)."""

    captured: int = 0  # readings the sources handed to the buffer
    skipped: int = 0  # source messages that could not become a reading (bad payload, unknown machine)
    sent: int = 0  # accepted by the server
    duplicates: int = 0  # the server had them already (a resend after a lost answer)
    rejected: int = 0  # refused by the server item by item; logged and dropped
    last_error: str | None = None
    _rate_mark: tuple[float, int] = field(default_factory=lambda: (time.monotonic(), 0))

    def rate(self) -> float:
        """Readings sent per second since the previous call."""
        now = time.monotonic()
        then, sent_then = self._rate_mark
        self._rate_mark = (now, self.sent)
        elapsed = now - then
        return (self.sent - sent_then) / elapsed if elapsed > 0 else 0.0

    def status_line(self, buffered: int, dropped: int) -> str:
        """`buffered=… sent=… (…/s) …`: one line a person can read in a terminal or a journal."""
        error = self.last_error or "-"
        return (
            f"buffered={buffered} sent={self.sent} rate={self.rate():.1f}/s duplicates={self.duplicates} "
            f"rejected={self.rejected} dropped={dropped} skipped={self.skipped} last_error={error}"
        )

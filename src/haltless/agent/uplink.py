"""Forwards buffered readings to `POST /api/v1/sensor-data`, oldest first, until the server has answered for each.

What each answer does to the batch:
- 202: every item is accepted, a duplicate, or rejected. All three leave the buffer; rejected items are
  logged and counted, never retried (a resend would be rejected again).
- 413: the batch is split in half and sent again; a single reading still too large is rejected.
- 400/422 for the whole body: the batch is logged and counted as rejected.
- 401/403: the API key is wrong or revoked; UplinkRefused stops the agent (retrying cannot help).
- 404/405: server_url does not point at a Haltless server; UplinkRefused as well.
- timeouts, connection errors, 5xx, 429 and other answers: kept, retried with backoff (and `Retry-After`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

import httpx
import orjson

from haltless.agent.backoff import Backoff
from haltless.agent.buffer import BufferedReading, ReadingBuffer
from haltless.agent.config import UplinkConfig
from haltless.agent.stats import AgentStats
from haltless.core.retry_after import parse_retry_after

INGEST_PATH = "/api/v1/sensor-data"
log = logging.getLogger("haltless.agent")

# A server asking for more than this is more likely misconfigured than overloaded; keep trying.
MAX_RETRY_AFTER_SECONDS = 600.0


class UplinkRefused(Exception):
    """The server refused the agent itself (bad key, wrong URL): retrying cannot succeed."""


@dataclass(frozen=True, slots=True)
class _Retry:
    reason: str
    retry_after: float | None = None


class Uplink:
    """Sends batches from the buffer; one instance per agent."""

    def __init__(self, config: UplinkConfig, http: httpx.AsyncClient, buffer: ReadingBuffer, stats: AgentStats) -> None:
        self._config = config
        self._http = http
        self._buffer = buffer
        self._stats = stats
        self._backoff = Backoff(config.backoff_initial, config.backoff_max)
        self._batch_limit = config.batch_size
        self._full = asyncio.Event()

    def notify_appended(self) -> None:
        """Called after readings were buffered: a full batch is worth sending before the interval ends."""
        if len(self._buffer) >= self._batch_limit:
            self._full.set()

    async def run(self) -> None:
        """Forward forever: a full batch at once, anything else every `send_interval` seconds."""
        while True:
            await self.drain(max_attempts=None)
            self._full.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._full.wait(), self._config.send_interval)

    async def drain(self, max_attempts: int | None) -> bool:
        """Send until the buffer is empty; with `max_attempts`, give up (False) after that many failures in a row."""
        failures = 0
        while True:
            batch = await self._buffer.oldest(self._batch_limit)
            if not batch:
                return True
            outcome = await self._send(batch)
            if outcome is None:
                failures = 0
                self._backoff.reset()
                continue
            failures += 1
            self._stats.last_error = outcome.reason
            delay = self._backoff.next_delay()
            if outcome.retry_after is not None:
                delay = max(delay, outcome.retry_after)
            if max_attempts is not None and failures >= max_attempts:
                log.warning(
                    "send failed (%s); giving up after %d attempts, readings stay buffered", outcome.reason, failures
                )
                return False
            log.warning("send failed (%s); %d readings kept, retrying in %.1fs", outcome.reason, len(batch), delay)
            await asyncio.sleep(delay)

    async def _send(self, batch: list[BufferedReading]) -> _Retry | None:
        """One POST; None when the server answered for every item of the batch."""
        body = orjson.dumps({"readings": [item.reading.to_wire() for item in batch]})
        try:
            response = await self._http.post(INGEST_PATH, content=body, headers={"content-type": "application/json"})
        except httpx.TransportError as exc:
            # Name the URL: "connection refused" alone does not say which server_url was wrong.
            url = self._http.base_url.join(INGEST_PATH)
            return _Retry(f"{type(exc).__name__} for {url}: {exc}" if str(exc) else f"{type(exc).__name__} for {url}")
        status = response.status_code
        if status == 202:
            return await self._settle(batch, response)
        detail = _detail(response)
        if status in (401, 403):
            raise UplinkRefused(f"the server refused the API key ({status}: {detail}); check api_key / api_key_env")
        if status in (404, 405):
            raise UplinkRefused(f"{response.url} answered {status}; is server_url the Haltless server's base URL?")
        if status == 413:
            if len(batch) > 1:
                self._batch_limit = max(1, len(batch) // 2)
                log.warning("batch of %d too large for the server; sending %d at a time", len(batch), self._batch_limit)
                return None
            await self._reject(batch, f"too large for the server: {detail}")
            return None
        if status in (400, 422):
            await self._reject(batch, detail)
            return None
        asked = parse_retry_after(response.headers.get("retry-after"), time.time_ns() // 1000)
        return _Retry(f"HTTP {status}: {detail}", None if asked is None else min(asked, MAX_RETRY_AFTER_SECONDS))

    async def _settle(self, batch: list[BufferedReading], response: httpx.Response) -> _Retry | None:
        try:
            result = response.json()
            accepted, duplicates, rejected = int(result["accepted"]), int(result["duplicates"]), result["rejected"]
        except (ValueError, KeyError, TypeError):
            return _Retry("the server's answer is not an ingest result")
        for item in rejected[:5]:
            reading = batch[item["index"]].reading if 0 <= item["index"] < len(batch) else None
            what = f"{reading.machine_id}/{reading.metric_name} {reading.reading_id}" if reading else "?"
            log.warning("server rejected reading %s: %s", what, item.get("detail"))
        if len(rejected) > 5:
            log.warning("server rejected %d more readings of this batch", len(rejected) - 5)
        await self._buffer.remove([item.seq for item in batch])
        self._stats.sent += accepted
        self._stats.duplicates += duplicates
        self._stats.rejected += len(rejected)
        return None

    async def _reject(self, batch: list[BufferedReading], detail: str) -> None:
        log.warning("server rejected a batch of %d readings: %s", len(batch), detail)
        await self._buffer.remove([item.seq for item in batch])
        self._stats.rejected += len(batch)
        self._stats.last_error = f"rejected: {detail}"


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    return str(detail) if detail else response.reason_phrase or "no detail"

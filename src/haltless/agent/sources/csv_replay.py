"""A CSV file replayed as readings: one pass, oldest row first, optionally paced.

Columns (header row required, any order): `machine_id` (or `machine`), `metric_name` (or `metric`),
`value`, and optionally `unit`, `timestamp` (ISO 8601 with a zone, or Unix seconds) and `reading_id`.
A row without a `reading_id` gets one derived from the file name, line number and row content, so
replaying the same file again is recognised by the server as duplicates instead of stored twice.
"""

from __future__ import annotations

import asyncio
import csv
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

from haltless.agent.captured import CapturedReading, now_micros, parse_capture_time, parse_value
from haltless.agent.config import CsvSourceConfig
from haltless.agent.sources import Emit, SourceError
from haltless.agent.sources.machines import MachineDirectory
from haltless.agent.stats import AgentStats

log = logging.getLogger("haltless.agent")
ROWS_PER_CHUNK = 500
# Fixed namespace for derived reading ids: the same row yields the same id on every machine, in every run.
_CSV_NAMESPACE = uuid.UUID("6d1f4a8e-2c1b-4a53-9a57-0f3c51a3c2b1")
_ALIASES = {"machine": "machine_id", "metric": "metric_name"}
_REQUIRED = ("machine_id", "metric_name", "value")
MAX_REPORTED_ROWS = 20


class CsvReplaySource:
    """Reads the file in chunks on a worker thread and emits each chunk as one buffered commit."""

    finite = True

    def __init__(self, config: CsvSourceConfig, machines: MachineDirectory, stats: AgentStats) -> None:
        self.name = config.name
        self._path = config.path
        self._rate = config.rate
        self._machines = machines
        self._stats = stats
        self._reported = 0

    async def run(self, emit: Emit) -> None:
        """Replay the file once."""
        chunk_size = ROWS_PER_CHUNK if self._rate <= 0 else max(1, min(ROWS_PER_CHUNK, int(self._rate)))
        rows = await asyncio.to_thread(_open_rows, self._path)
        loop = asyncio.get_running_loop()
        started = loop.time()
        emitted = 0
        try:
            while True:
                chunk = await asyncio.to_thread(_take, rows, chunk_size)
                if not chunk:
                    break
                readings = [r for r in (self._reading(line, row) for line, row in chunk) if r is not None]
                await emit(readings)
                emitted += len(chunk)
                if self._rate > 0:
                    # Pace by the schedule, not by a fixed sleep, so slow commits do not stretch the replay.
                    await asyncio.sleep(max(0.0, started + emitted / self._rate - loop.time()))
        finally:
            rows.close()
        log.info("%s: replayed %s (%d rows)", self.name, self._path, emitted)

    def _reading(self, line: int, row: dict[str, str]) -> CapturedReading | None:
        machine_name = row.get("machine_id", "").strip()
        machine_id = self._machines.resolve(machine_name)
        value = parse_value(row.get("value", ""))
        metric = row.get("metric_name", "").strip()
        raw_ts = row.get("timestamp", "").strip()
        ts_us = parse_capture_time(raw_ts) if raw_ts else now_micros()
        problem = None
        if machine_id is None:
            problem = f"machine {machine_name!r} is neither a UUID nor listed under [machines]"
        elif not metric:
            problem = "empty metric_name"
        elif value is None:
            problem = f"value {row.get('value')!r} is not a finite number"
        elif ts_us is None:
            problem = f"timestamp {raw_ts!r} is neither ISO 8601 with a zone nor Unix seconds"
        if problem is not None or machine_id is None or value is None or ts_us is None:
            self._stats.skipped += 1
            if self._reported < MAX_REPORTED_ROWS:
                self._reported += 1
                log.warning("%s: %s line %d skipped: %s", self.name, self._path.name, line, problem)
            return None
        derived = uuid.uuid5(_CSV_NAMESPACE, f"{self._path.name}:{line}:{sorted(row.items())}")
        return CapturedReading(
            reading_id=row.get("reading_id", "").strip() or str(derived),
            machine_id=machine_id,
            metric_name=metric,
            value=value,
            unit=row.get("unit", "").strip(),
            ts_us=ts_us,
        )


class _Rows:
    """The open file and its row iterator, yielding (line number, row with canonical column names)."""

    def __init__(self, path: Path) -> None:
        self._file = path.open(newline="", encoding="utf-8")
        self._reader = csv.DictReader(self._file)
        header = [_ALIASES.get(name.strip(), name.strip()) for name in self._reader.fieldnames or []]
        missing = [column for column in _REQUIRED if column not in header]
        if missing:
            self._file.close()
            raise SourceError(f"{path}: the header lacks the column(s) {', '.join(missing)}")
        self._reader.fieldnames = header
        self.iterator: Iterator[dict[str, str]] = iter(self._reader)

    @property
    def line(self) -> int:
        return self._reader.line_num

    def close(self) -> None:
        self._file.close()


def _open_rows(path: Path) -> _Rows:
    try:
        return _Rows(path)
    except FileNotFoundError:
        raise SourceError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SourceError(f"{path}: cannot read it as CSV ({exc})") from None


def _take(rows: _Rows, count: int) -> list[tuple[int, dict[str, str]]]:
    chunk: list[tuple[int, dict[str, str]]] = []
    try:
        for row in rows.iterator:
            chunk.append((rows.line, {k: v or "" for k, v in row.items() if k is not None}))
            if len(chunk) >= count:
                break
    except (UnicodeDecodeError, csv.Error) as exc:
        raise SourceError(f"line {rows.line}: {exc}") from None
    return chunk

"""The ingest pipeline: validate → one change per batch (store → evaluate → commit → publish)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import orjson
from sqlalchemy.exc import IntegrityError

from haltless.core.names import shown
from haltless.core.planners.readings import plan_readings
from haltless.core.readings import (
    MAX_READINGS_PER_REQUEST,
    Reading,
    Rejection,
    decode_valid_batch,
    validate_reading,
)
from haltless.errors import InvalidRequest, PayloadTooLarge
from haltless.server.service.changes import Change, Changes
from haltless.settings import Settings
from haltless.store import alerts as alert_store
from haltless.store import machines, readings


@dataclass(slots=True)
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": [{"index": r.index, "detail": r.detail} for r in self.rejected],
        }


def parse_body(body: bytes) -> list[object]:
    """The `readings` list of an ingest body; NaN/Infinity literals and lone surrogates (`"\\ud800"`) parse, so
    the items holding them can be refused one by one while the rest of the batch is stored."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        try:
            # Python's json.dumps writes NaN/Infinity by default, and JSON allows a `\ud800` escape that is no
            # text: json accepts both, so validate_reading rejects just the items that hold them.
            payload = json.loads(body)
        except (ValueError, RecursionError):
            raise InvalidRequest("body is not valid JSON") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("readings"), list):
        raise InvalidRequest('body must be a JSON object {"readings": [...]}')
    extra = payload.keys() - {"readings"}
    if extra:
        raise InvalidRequest(f"unknown field(s): {', '.join(sorted(map(shown, extra)))}")
    items: list[object] = payload["readings"]
    if len(items) > MAX_READINGS_PER_REQUEST:
        raise PayloadTooLarge(
            f"at most {MAX_READINGS_PER_REQUEST} readings per request (got {len(items)}); split the batch"
        )
    return items


def _sift(
    valid: list[Reading], known: set[str], seen: set[tuple[str, str]], rejected: list[Rejection]
) -> tuple[list[Reading], int]:
    """The readings to store: not of an unknown machine (rejected), not a reading id the machine sent before
    (counted)."""
    batch: list[Reading] = []
    duplicates = 0
    for reading in valid:
        if reading.machine_id not in known:
            rejected.append(Rejection(reading.index, "unknown machine_id"))
            continue
        if reading.reading_id is not None:
            key = (reading.machine_id, reading.reading_id)
            if key in seen:
                duplicates += 1
                continue
            seen.add(key)
        batch.append(reading)
    return batch, duplicates


# Tries of a batch's transaction when a concurrent one stored the same reading id, registered a metric's unit
# first, or deleted a machine.
_STORE_ATTEMPTS = 5


class IngestPipeline:
    """Validates a batch and stores it as one change (server/service/changes.py); one instance per app."""

    def __init__(self, settings: Settings, changes: Changes) -> None:
        self._changes = changes
        self._max_future_us = int(settings.max_future_skew * 1_000_000)

    async def ingest_body(self, tenant_id: str, body: bytes, now_us: int) -> IngestResult:
        """Validate, store and publish the readings of a request body; returns per-item outcomes.

        A body whose items are all valid (the usual case) is decoded in one step; any other body is read item
        by item, so each bad item gets its own rejection and the good ones are still stored.
        """
        valid = decode_valid_batch(body, now_us, self._max_future_us)
        if valid is None:
            return await self.ingest(tenant_id, parse_body(body), now_us)
        return await self._ingest_valid(tenant_id, valid, now_us, IngestResult())

    async def ingest(self, tenant_id: str, items: list[object], now_us: int) -> IngestResult:
        """Validate (item by item), store and publish one batch; returns per-item outcomes."""
        result = IngestResult()
        valid: list[Reading] = []
        for index, item in enumerate(items):
            outcome = validate_reading(index, item, now_us, self._max_future_us)
            if isinstance(outcome, Rejection):
                result.rejected.append(outcome)
            else:
                valid.append(outcome)
        return await self._ingest_valid(tenant_id, valid, now_us, result)

    async def _ingest_valid(
        self, tenant_id: str, valid: list[Reading], now_us: int, result: IngestResult
    ) -> IngestResult:
        if valid:
            for attempt in range(_STORE_ATTEMPTS):
                try:
                    await self._store(tenant_id, valid, now_us, result, trust_memory=attempt == 0)
                    break
                except IntegrityError:
                    # A concurrent batch stored one of our reading ids or units first, or a machine was deleted
                    # meanwhile (another process, or a deletion this process has not applied yet); the re-check
                    # sees it.
                    # Processes that share no lock (no Redis bus) can race again on the next try when many
                    # batches carry the same ids at once, so it takes a few.
                    if attempt == _STORE_ATTEMPTS - 1:
                        raise
        result.rejected.sort(key=lambda r: r.index)
        return result

    async def _store(
        self, tenant_id: str, valid: list[Reading], now_us: int, result: IngestResult, *, trust_memory: bool
    ) -> None:
        """One change: sift out unknown machines and seen reading ids, then store and evaluate the rest."""
        rejected: list[Rejection] = []
        duplicates = 0
        # Hot path (bench M4): `lock_reads=False` leaves out BEGIN IMMEDIATE, a round trip to SQLite's thread, for
        # the usual batch, which reads nothing (machines and units known in memory, no reading ids): its first
        # write (the INSERT) takes the write lock itself. Every query below awaits `tx.before_reads()` first.
        async with self._changes.for_tenant(tenant_id, refresh=False, lock_reads=False) as tx:
            machine_ids = {r.machine_id for r in valid}
            known = await self._known_machines(tx, machine_ids, trust_memory)
            ids = [(r.machine_id, r.reading_id) for r in valid if r.reading_id is not None and r.machine_id in known]
            seen: set[tuple[str, str]] = set()
            if ids:
                await tx.before_reads()
                seen = await readings.seen_reading_ids(tx.conn, tenant_id=tenant_id, keys=ids)
            if not ids and len(known) == len(machine_ids):
                # The usual batch (bench M4): every machine known, no reading ids, so nothing to sift out.
                batch, reporting = valid, machine_ids
            else:
                batch, duplicates = _sift(valid, known, seen, rejected)
                reporting = {r.machine_id for r in batch}
            # --- one unit per (machine, metric) (issue 19): refuse readings in another unit, item by item.
            units = await self._changes.units.check(
                tx.conn, batch, trust_memory=trust_memory, before_reads=tx.before_reads
            )
            batch = units.kept
            if units.rejected:
                rejected.extend(units.rejected)
                reporting = {r.machine_id for r in batch}
            # --- end of the unit check
            if batch:
                await tx.refresh(reporting, batch)
                await tx.prepare_detectors(batch)
                plan = plan_readings(tx.fleet, batch, now_us, alert_store.new_id, reporting)
                plan.units = units.new_units  # registered with the readings, remembered once committed
                tx.apply(plan)
        result.rejected.extend(rejected)
        result.duplicates += duplicates
        result.accepted += len(batch)

    async def _known_machines(self, tx: Change, machine_ids: set[str], trust_memory: bool) -> set[str]:
        """Which of the ids are the tenant's machines: the fleet in memory first, the database for the rest.

        Hot path (bench M4): a query per batch for machines the fleet already holds was a measured share of a batch
        (docs/benchmarks.md, "Hot-path choices").
        Memory can only be behind on a deletion, which the readings' foreign key then refuses (the retry asks
        the database); a machine it does not know (made by another process) is looked up.
        """
        known = tx.fleet.known(machine_ids) if trust_memory else set()
        missing = machine_ids - known
        if missing:
            await tx.before_reads()
            known |= await machines.existing_ids(tx.conn, tenant_id=tx.fleet.tenant_id, machine_ids=missing)
        return known

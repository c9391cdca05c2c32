"""OPC UA values as readings, without I/O: quality, value conversion, reading ids, and the `browse` snippet."""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from haltless.agent.captured import CapturedReading, derived_reading_id, new_reading_id
from haltless.core.names import MAX_METRIC_NAME_LENGTH
from haltless.core.timefmt import to_micros

Quality = Literal["good", "uncertain", "bad"]
# The two top bits of an OPC UA StatusCode are its severity (Part 4, 7.34.1); 11 is reserved and read as Bad.
_SEVERITY_MASK = 0xC000_0000
_UNCERTAIN = 0x4000_0000


def quality(status_code: int) -> Quality:
    """The severity of a StatusCode."""
    severity = status_code & _SEVERITY_MASK
    if severity == 0:
        return "good"
    return "uncertain" if severity == _UNCERTAIN else "bad"


def node_value(raw: object) -> float | None:
    """A finite float from a numeric or boolean OPC UA value (true is 1.0); None for anything else."""
    if isinstance(raw, bool):
        return 1.0 if raw else 0.0
    if isinstance(raw, int | float):
        try:
            value = float(raw)
        except OverflowError:  # a UInt64 past float range cannot happen, but an Int64 from a bad server could
            return None
        return value if math.isfinite(value) else None
    return None


def datetime_micros(moment: datetime) -> int:
    """Microseconds since the Unix epoch of an OPC UA DateTime (UTC; naive ones are UTC too)."""
    return to_micros(moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC))


@dataclass(frozen=True, slots=True)
class NodeMapping:
    """Where the values of one monitored node go."""

    reference: str  # the node as the config names it (node id or browse path)
    machine_id: str
    metric: str
    unit: str


@dataclass(frozen=True, slots=True)
class DataChange:
    """One value notification, as plain data."""

    value: object
    status_code: int
    source_time: datetime | None
    server_time: datetime | None


def datachange_reading(
    mapping: NodeMapping, change: DataChange, received_us: int, *, accept_uncertain: bool
) -> CapturedReading | str:
    """The reading of a notification, or why it is skipped.

    The reading's time is the source timestamp (when the value was measured), else the server timestamp.
    Its id is derived from node, time and value, so the current value a new subscription starts with after a
    reconnect is the same reading as before and the server stores it once. A notification with neither
    timestamp cannot be told from a later equal one and gets a fresh id, stamped with the time it arrived.
    """
    grade = quality(change.status_code)
    if grade == "bad" or (grade == "uncertain" and not accept_uncertain):
        return f"{mapping.reference}: quality {grade}"
    value = node_value(change.value)
    if value is None:
        return f"{mapping.reference}: value {change.value!r} is not a finite number or a boolean"
    stamp = change.source_time or change.server_time
    if stamp is None:
        reading_id, ts_us = new_reading_id(), received_us
    else:
        ts_us = datetime_micros(stamp)
        reading_id = derived_reading_id("opcua", mapping.machine_id, mapping.metric, mapping.reference, ts_us, value)
    return CapturedReading(reading_id, mapping.machine_id, mapping.metric, value, mapping.unit, ts_us)


@dataclass(frozen=True, slots=True)
class BrowsedVariable:
    """A variable node found by `haltless agent browse`."""

    path: tuple[str, ...]  # browse names from the Objects folder down, e.g. ("2:Press1", "2:Temperature")
    node_id: str
    data_type: str
    unit: str | None = None


def _bare(browse_name: str) -> str:
    return browse_name.split(":", 1)[1] if ":" in browse_name else browse_name


def metric_name(browse_name: str) -> str:
    """A metric name the server accepts, made from a browse name ("Spindle Speed" → "spindle_speed")."""
    # Accents go (Ü → U) rather than the letter: the server's alphabet is ASCII.
    ascii_name = unicodedata.normalize("NFKD", _bare(browse_name)).encode("ascii", "ignore").decode()
    words = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", ascii_name)
    cleaned = re.sub(r"[^A-Za-z0-9_.:/-]+", "_", words).strip("_").lower()
    return (cleaned or "value")[:MAX_METRIC_NAME_LENGTH]


def _toml_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "".join(ch if ch.isprintable() else f"\\u{ord(ch):04x}" for ch in escaped) + '"'


def render_snippet(source_lines: Sequence[str], variables: Sequence[BrowsedVariable]) -> str:
    """A `[[sources]]` block for the config file: `source_lines` (type, endpoint, security) and one
    `[[sources.nodes]]` per variable, with the parent object's name as the machine alias."""
    machines = sorted({_bare(v.path[-2]) if len(v.path) > 1 else "machine" for v in variables})
    lines = [f"# {len(variables)} variable node(s). Map each machine name to its machine id under [machines]:"]
    lines += [f'#   {_toml_string(name)} = "<machine UUID>"' for name in machines]
    lines += ["[[sources]]", *source_lines]
    for variable in variables:
        machine = _bare(variable.path[-2]) if len(variable.path) > 1 else "machine"
        where = f"/0:Objects/{'/'.join(variable.path)} ({variable.data_type})"
        lines += [
            "",
            "[[sources.nodes]]",
            f"node_id = {_toml_string(variable.node_id)}  # {where}",
            f"machine = {_toml_string(machine)}",
            f"metric = {_toml_string(metric_name(variable.path[-1]))}",
        ]
        if variable.unit:
            lines.append(f"unit = {_toml_string(variable.unit)}")
    return "\n".join(lines) + "\n"

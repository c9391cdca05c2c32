"""Modbus register maps without I/O: data types, how registers decode to a number, and which requests read them.

Decoding takes the 16-bit register values as the device sent them. `word_order` says which register holds the
most significant word of a 32/64-bit value ("big": the first, as the Modbus spec sends bytes; "little": the
last), `byte_order` which byte of each register comes first ("big": the high byte, the Modbus default).
A float32 whose bytes are A B C D (A most significant) therefore arrives as
big/big ABCD, little/big CDAB, big/little BADC, little/little DCBA.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

RegisterTable = Literal["holding", "input", "coil", "discrete_input"]
DataType = Literal["bool", "int16", "uint16", "int32", "uint32", "float32", "float64"]
Order = Literal["big", "little"]

REGISTER_TABLES: tuple[RegisterTable, ...] = ("holding", "input", "coil", "discrete_input")
BIT_TABLES: frozenset[RegisterTable] = frozenset({"coil", "discrete_input"})
# Registers (or bits) one value occupies.
WIDTH: dict[DataType, int] = {
    "bool": 1,
    "int16": 1,
    "uint16": 1,
    "int32": 2,
    "uint32": 2,
    "float32": 2,
    "float64": 4,
}
_STRUCT_CODE = {"int16": "h", "uint16": "H", "int32": "i", "uint32": "I", "float32": "f", "float64": "d"}
LAST_ADDRESS = 65535
# The Modbus application protocol's limits per request: 125 registers (FC 3/4), 2000 bits (FC 1/2).
MAX_REGISTERS_PER_READ = 125
MAX_BITS_PER_READ = 2000


def max_per_read(table: RegisterTable) -> int:
    """How many registers (or bits) of `table` one request may read."""
    return MAX_BITS_PER_READ if table in BIT_TABLES else MAX_REGISTERS_PER_READ


def decode_registers(registers: Sequence[int], data_type: DataType, word_order: Order, byte_order: Order) -> float:
    """The number `registers` (16-bit values, in address order) hold; ValueError on the wrong count or a bad value."""
    if data_type == "bool":
        raise ValueError("bool values live in coils and discrete inputs, not in registers")
    if len(registers) != WIDTH[data_type]:
        raise ValueError(f"{data_type} takes {WIDTH[data_type]} register(s), got {len(registers)}")
    words = registers if word_order == "big" else list(reversed(registers))
    try:
        raw = b"".join(word.to_bytes(2, byte_order) for word in words)
    except OverflowError:
        raise ValueError(f"registers must be 16-bit values, got {list(registers)}") from None
    (value,) = struct.unpack(">" + _STRUCT_CODE[data_type], raw)
    return float(value)


def scaled(raw: float, scale: float, offset: float) -> float | None:
    """`raw * scale + offset`, or None when that is not a finite number (a NaN float register)."""
    value = raw * scale + offset
    return value if math.isfinite(value) else None


@dataclass(frozen=True, slots=True)
class RegisterSpan:
    """The addresses one configured value occupies."""

    table: RegisterTable
    address: int
    width: int

    @property
    def end(self) -> int:
        """One past the last address."""
        return self.address + self.width


@dataclass(frozen=True, slots=True)
class PlannedRead:
    """One request: `count` registers (or bits) of `table` from `start`; `members` index the spans it serves."""

    table: RegisterTable
    start: int
    count: int
    members: tuple[int, ...]

    def slice_of(self, span: RegisterSpan) -> tuple[int, int]:
        """Where `span`'s values sit in this request's answer."""
        offset = span.address - self.start
        return offset, offset + span.width


def plan_reads(spans: Sequence[RegisterSpan], max_gap: int = 0) -> list[PlannedRead]:
    """As few requests as cover every span: per table, in address order, a span joins the request before it
    when it starts at most `max_gap` addresses after that request's end and the request stays within the
    protocol's limit. Overlapping spans (two types read from one register) share a request."""
    plans: list[PlannedRead] = []
    order = sorted(range(len(spans)), key=lambda i: (REGISTER_TABLES.index(spans[i].table), spans[i].address, i))
    table: RegisterTable | None = None
    start = end = 0
    members: list[int] = []
    for index in order:
        span = spans[index]
        joins = (
            span.table == table
            and span.address <= end + max_gap
            and max(end, span.end) - start <= max_per_read(span.table)
        )
        if joins:
            end = max(end, span.end)
            members.append(index)
            continue
        if table is not None:
            plans.append(PlannedRead(table, start, end - start, tuple(members)))
        table, start, end, members = span.table, span.address, span.end, [index]
    if table is not None:
        plans.append(PlannedRead(table, start, end - start, tuple(members)))
    return plans

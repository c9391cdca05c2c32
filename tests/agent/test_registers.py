"""Modbus register decoding and read planning, pure: known encodings in every word and byte order."""

from __future__ import annotations

import pytest

from haltless.agent.sources.registers import (
    MAX_BITS_PER_READ,
    MAX_REGISTERS_PER_READ,
    DataType,
    Order,
    PlannedRead,
    RegisterSpan,
    decode_registers,
    plan_reads,
    scaled,
)

# Known encodings, register by register, in the four layouts devices use: (word_order, byte_order) =
# (big, big) ABCD, (little, big) CDAB, (big, little) BADC, (little, little) DCBA, A the most significant byte.
KNOWN: list[tuple[DataType, float, list[int], list[int], list[int], list[int]]] = [
    ("int16", -2.0, [0xFFFE], [0xFFFE], [0xFEFF], [0xFEFF]),
    ("uint16", 65534.0, [0xFFFE], [0xFFFE], [0xFEFF], [0xFEFF]),
    ("int32", -123456.0, [0xFFFE, 0x1DC0], [0x1DC0, 0xFFFE], [0xFEFF, 0xC01D], [0xC01D, 0xFEFF]),
    ("uint32", 305419896.0, [0x1234, 0x5678], [0x5678, 0x1234], [0x3412, 0x7856], [0x7856, 0x3412]),
    ("float32", -0.15625, [0xBE20, 0x0000], [0x0000, 0xBE20], [0x20BE, 0x0000], [0x0000, 0x20BE]),
    (
        "float64",
        1234.5678,
        [0x4093, 0x4A45, 0x6D5C, 0xFAAD],
        [0xFAAD, 0x6D5C, 0x4A45, 0x4093],
        [0x9340, 0x454A, 0x5C6D, 0xADFA],
        [0xADFA, 0x5C6D, 0x454A, 0x9340],
    ),
]
ORDERS: list[tuple[Order, Order]] = [("big", "big"), ("little", "big"), ("big", "little"), ("little", "little")]
CASES = [
    pytest.param(data_type, value, layouts[i], *ORDERS[i], id=f"{data_type}-{'-'.join(ORDERS[i])}")
    for data_type, value, *layouts in KNOWN
    for i in range(4)
]


@pytest.mark.parametrize(("data_type", "expected", "registers", "word_order", "byte_order"), CASES)
def test_each_type_decodes_in_each_word_and_byte_order(
    data_type: DataType, expected: float, registers: list[int], word_order: Order, byte_order: Order
) -> None:
    assert decode_registers(registers, data_type, word_order, byte_order) == expected


def test_the_four_float32_layouts_as_devices_document_them() -> None:
    """123.456 (0x42F6E979) as energy-meter manuals print it, register by register."""
    assert decode_registers([0x42F6, 0xE979], "float32", "big", "big") == pytest.approx(123.456)
    assert decode_registers([0xE979, 0x42F6], "float32", "little", "big") == pytest.approx(123.456)
    assert decode_registers([0xF642, 0x79E9], "float32", "big", "little") == pytest.approx(123.456)
    assert decode_registers([0x79E9, 0xF642], "float32", "little", "little") == pytest.approx(123.456)


def test_16_bit_types_only_swap_bytes() -> None:
    assert decode_registers([0x0100], "uint16", "little", "little") == 1.0
    assert decode_registers([0x0100], "uint16", "little", "big") == 256.0


@pytest.mark.parametrize(
    ("registers", "data_type", "problem"),
    [
        ([1], "float32", "takes 2"),
        ([1, 2, 3], "float64", "takes 4"),
        ([70000], "uint16", "16-bit"),
        ([1], "bool", "coils"),
    ],
)
def test_wrong_register_counts_and_values_are_refused(registers: list[int], data_type: DataType, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        decode_registers(registers, data_type, "big", "big")


def test_scale_and_offset_apply_and_nan_is_no_value() -> None:
    assert scaled(2150.0, 0.1, -40.0) == pytest.approx(175.0)
    assert scaled(float("nan"), 1.0, 0.0) is None


def test_contiguous_registers_are_read_in_one_request() -> None:
    spans = [
        RegisterSpan("holding", 104, 2),
        RegisterSpan("holding", 100, 2),
        RegisterSpan("holding", 102, 2),
        RegisterSpan("holding", 110, 1),  # a gap: a request of its own
    ]
    assert plan_reads(spans) == [PlannedRead("holding", 100, 6, (1, 2, 0)), PlannedRead("holding", 110, 1, (3,))]


def test_a_gap_within_max_gap_is_read_over() -> None:
    spans = [RegisterSpan("input", 0, 2), RegisterSpan("input", 5, 1)]
    assert plan_reads(spans, max_gap=3) == [PlannedRead("input", 0, 6, (0, 1))]
    assert len(plan_reads(spans, max_gap=2)) == 2


def test_tables_are_never_mixed_and_come_in_a_fixed_order() -> None:
    spans = [
        RegisterSpan("discrete_input", 0, 1),
        RegisterSpan("coil", 1, 1),
        RegisterSpan("input", 0, 1),
        RegisterSpan("holding", 1, 1),
        RegisterSpan("coil", 0, 1),
    ]
    assert plan_reads(spans) == [
        PlannedRead("holding", 1, 1, (3,)),
        PlannedRead("input", 0, 1, (2,)),
        PlannedRead("coil", 0, 2, (4, 1)),
        PlannedRead("discrete_input", 0, 1, (0,)),
    ]


def test_overlapping_views_of_one_register_share_a_request() -> None:
    spans = [RegisterSpan("holding", 10, 2), RegisterSpan("holding", 11, 1), RegisterSpan("holding", 10, 1)]
    (read,) = plan_reads(spans)
    assert (read.start, read.count, sorted(read.members)) == (10, 2, [0, 1, 2])
    assert read.slice_of(spans[1]) == (1, 2)


def test_requests_stay_within_the_protocol_limits() -> None:
    registers = [RegisterSpan("holding", 2 * i, 2) for i in range(100)]  # 200 contiguous registers
    plans = plan_reads(registers)
    assert [(p.start, p.count) for p in plans] == [(0, 124), (124, 76)]
    assert all(p.count <= MAX_REGISTERS_PER_READ for p in plans)
    assert sorted(m for p in plans for m in p.members) == list(range(100))

    bits = [RegisterSpan("coil", i, 1) for i in range(2500)]
    assert [(p.start, p.count) for p in plan_reads(bits)] == [(0, MAX_BITS_PER_READ), (2000, 500)]


def test_no_spans_no_requests() -> None:
    assert plan_reads([]) == []

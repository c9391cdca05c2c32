"""Modbus TCP as a source: the register map is polled every `poll_interval`, contiguous values in one request.

Each poll reads the planned blocks (`registers.plan_reads`), decodes every configured value from its block
and buffers them as one commit, stamped with the time the block's answer arrived. A poll still running
when the next one is due makes the agent skip the polls it missed (counted in `polls_missed`) instead of
piling them up. A lost connection or an unanswered request ends the session; the source reconnects with
backoff and polling resumes on a fresh schedule.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.pdu import ModbusPDU

from haltless.agent.backoff import Backoff
from haltless.agent.captured import CapturedReading, derived_reading_id, now_micros
from haltless.agent.config import ModbusRegister, ModbusSourceConfig
from haltless.agent.sources import Emit
from haltless.agent.sources.machines import MachineDirectory
from haltless.agent.sources.registers import (
    BIT_TABLES,
    WIDTH,
    DataType,
    Order,
    PlannedRead,
    RegisterSpan,
    RegisterTable,
    decode_registers,
    plan_reads,
    scaled,
)
from haltless.agent.stats import AgentStats

log = logging.getLogger("haltless.agent")
# Modbus exception codes (Modbus application protocol, section 7) in the words of the spec.
_EXCEPTIONS = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}


def exception_name(code: int) -> str:
    """`exception 2 (illegal data address)`."""
    return f"exception {code} ({_EXCEPTIONS.get(code, 'unknown')})"


class ModbusUnavailable(Exception):
    """The device cannot be reached or did not answer; the source reconnects."""


@dataclass(frozen=True, slots=True)
class RegisterPoint:
    """One configured value: where it is, how it decodes, which reading it becomes."""

    span: RegisterSpan
    data_type: DataType
    word_order: Order
    byte_order: Order
    scale: float
    offset: float
    machine_id: str
    metric: str
    unit: str

    @classmethod
    def of(cls, register: ModbusRegister, source: ModbusSourceConfig, machine_id: str) -> RegisterPoint:
        """The point of a `[[sources.registers]]` entry, with the source's defaults filled in."""
        data_type = register.data_type
        return cls(
            RegisterSpan(register.table, register.address, WIDTH[data_type]),
            data_type,
            register.word_order or source.word_order,
            register.byte_order or source.byte_order,
            register.scale,
            register.offset,
            machine_id,
            register.metric,
            register.unit,
        )

    def raw_value(self, answer: Sequence[int] | Sequence[bool], read: PlannedRead) -> float:
        """The unscaled value in a block's answer (bits for coils and discrete inputs, else registers)."""
        start, end = read.slice_of(self.span)
        words = answer[start:end]
        if self.data_type == "bool":
            return 1.0 if words[0] else 0.0
        return decode_registers([int(word) for word in words], self.data_type, self.word_order, self.byte_order)


async def read_block(
    client: AsyncModbusTcpClient, table: RegisterTable, start: int, count: int, unit_id: int
) -> ModbusPDU:
    """Read `count` registers (or bits) of `table` from `start`."""
    request: Callable[..., Awaitable[ModbusPDU]] = {
        "holding": client.read_holding_registers,
        "input": client.read_input_registers,
        "coil": client.read_coils,
        "discrete_input": client.read_discrete_inputs,
    }[table]
    response = await request(start, count=count, device_id=unit_id)
    # pymodbus waits for the answer with asyncio.wait_for, which on Python 3.11 drops a cancellation that
    # arrives together with the answer (fixed in 3.12); the task still counts it, so honour it here, or a
    # stopping agent would poll on forever.
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
    return response


async def open_client(host: str, port: int, request_timeout: float) -> AsyncModbusTcpClient:
    """A connected client without pymodbus's own reconnecting (the source does that, with the agent's backoff)."""
    client = AsyncModbusTcpClient(host, port=port, timeout=request_timeout, retries=0, reconnect_delay=0)
    if not await client.connect():
        client.close()
        raise ModbusUnavailable(f"cannot connect to {host}:{port}")
    return client


class ModbusSource:
    """Polls on a fixed schedule; reconnects with backoff when the device goes away."""

    finite = False

    def __init__(self, config: ModbusSourceConfig, machines: MachineDirectory, stats: AgentStats) -> None:
        self.name = config.name
        self._config = config
        self._stats = stats
        self._points = [
            RegisterPoint.of(register, config, machines.resolve(register.machine) or register.machine)
            for register in config.registers
        ]
        self._plan = plan_reads([point.span for point in self._points], config.max_gap)
        self._where = f"{config.host}:{config.port}/{config.unit_id}"
        self._reported: set[str] = set()
        self.connected = asyncio.Event()  # set while connected (tests await it)
        self.polls = 0  # polls completed
        self.polls_missed = 0  # polls skipped because the one before was still running when they were due

    async def run(self, emit: Emit) -> None:
        """Poll until cancelled."""
        backoff = Backoff(0.5, 30.0)
        log.info("%s: %d value(s) in %d request(s) per poll", self.name, len(self._points), len(self._plan))
        while True:
            try:
                await self._session(emit, backoff)
            except (ModbusUnavailable, OSError, TimeoutError, ModbusException) as exc:
                self.connected.clear()
                reason = str(exc) or type(exc).__name__
                self._stats.last_error = f"{self.name}: {reason}"
                delay = backoff.next_delay()
                log.warning("%s: Modbus device %s: %s; reconnecting in %.1fs", self.name, self._where, reason, delay)
                await asyncio.sleep(delay)

    async def _session(self, emit: Emit, backoff: Backoff) -> None:
        config = self._config
        client = await open_client(config.host, config.port, config.timeout)
        try:
            backoff.reset()
            self.connected.set()
            log.info("%s: connected to %s", self.name, self._where)
            await self._poll_on_schedule(client, emit)
        finally:
            self.connected.clear()
            client.close()

    async def _poll_on_schedule(self, client: AsyncModbusTcpClient, emit: Emit) -> None:
        loop = asyncio.get_running_loop()
        interval = self._config.poll_interval
        started = loop.time()
        tick = 0
        while True:
            await emit(await self._poll(client))
            self.polls += 1
            tick += 1
            now = loop.time()
            due = started + tick * interval
            if now > due:
                missed = int((now - due) // interval) + 1
                if self.polls_missed == 0:
                    log.warning(
                        "%s: a poll takes longer than poll_interval (%.3fs); skipping the polls it overran",
                        self.name,
                        interval,
                    )
                self.polls_missed += missed
                tick += missed
                due = started + tick * interval
            await asyncio.sleep(due - now)

    async def _poll(self, client: AsyncModbusTcpClient) -> list[CapturedReading]:
        readings: list[CapturedReading] = []
        unit_id = self._config.unit_id
        for read in self._plan:
            response = await read_block(client, read.table, read.start, read.count, unit_id)
            received_us = now_micros()
            if response.isError():
                self._skip(
                    f"{read.table} {read.start}..{read.start + read.count - 1}: the device answered "
                    f"{exception_name(response.exception_code)}",
                    len(read.members),
                )
                continue
            answer: Sequence[int] | Sequence[bool] = response.bits if read.table in BIT_TABLES else response.registers
            if len(answer) < read.count:
                self._skip(f"{read.table} {read.start}: the device sent {len(answer)} of {read.count} values", 1)
                continue
            for member in read.members:
                reading = self._reading(self._points[member], answer, read, received_us)
                if reading is not None:
                    readings.append(reading)
        return readings

    def _reading(
        self, point: RegisterPoint, answer: Sequence[int] | Sequence[bool], read: PlannedRead, received_us: int
    ) -> CapturedReading | None:
        value = scaled(point.raw_value(answer, read), point.scale, point.offset)
        if value is None:
            self._skip(f"{point.span.table} {point.span.address}: {point.data_type} is not a finite number", 1)
            return None
        # The poll time is the measurement time; a poll is never repeated, so the id only has to be stable
        # for this one reading (a resend after a lost answer), and the same on every agent that sees it.
        reading_id = derived_reading_id(
            "modbus", point.machine_id, point.metric, self._where, point.span.table, point.span.address, received_us
        )
        return CapturedReading(reading_id, point.machine_id, point.metric, value, point.unit, received_us)

    def _skip(self, reason: str, count: int) -> None:
        self._stats.skipped += count
        if reason not in self._reported and len(self._reported) < 1000:
            self._reported.add(reason)
            log.warning("%s: skipped %s", self.name, reason)

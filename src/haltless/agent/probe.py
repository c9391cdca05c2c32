"""`haltless agent probe modbus://host:502 --unit 1 --address 100 --type float32`: read one value, print it.

The value goes to stdout alone (for scripts); what was read, with the raw registers, goes to stderr, so a
wrong word or byte order can be spotted against the device's manual.
"""

from __future__ import annotations

import asyncio
import sys
from urllib.parse import urlsplit

from pydantic import ValidationError

from haltless.agent.config import ModbusRegister
from haltless.agent.sources.modbus import exception_name, open_client, read_block
from haltless.agent.sources.registers import BIT_TABLES, WIDTH, decode_registers

DEFAULT_PORT = 502
_FLAGS = {"table": "--table", "type": "--type", "address": "--address", "word_order": "--word-order"}


def probe_command(
    url: str,
    *,
    unit_id: int,
    address: int,
    table: str,
    data_type: str | None,
    word_order: str,
    byte_order: str,
    timeout: float,
) -> int:
    """Run the command; returns the exit code (0 read, 1 the device failed or refused, 2 bad arguments)."""
    parts = urlsplit(url)
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        port = -1
    if parts.scheme != "modbus" or not parts.hostname or not 0 < port < 65536:
        print(f"error: {url!r} is not a Modbus TCP address such as modbus://192.168.1.20:502", file=sys.stderr)
        return 2
    if not 0 <= unit_id <= 255:
        print("error: --unit must be 0..255", file=sys.stderr)
        return 2
    fields = {"table": table, "type": data_type, "address": address, "word_order": word_order}
    fields |= {"byte_order": byte_order, "machine": "-", "metric": "-"}
    try:
        register = ModbusRegister.model_validate(fields)
    except ValidationError as exc:
        for error in exc.errors():
            flag = _FLAGS.get(str(error["loc"][0]), str(error["loc"][0])) if error["loc"] else "arguments"
            print(f"error: {flag}: {error['msg'].removeprefix('Value error, ')}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_probe(parts.hostname, port, unit_id, register, timeout))
    except Exception as exc:  # unreachable or silent device: one line, as the agent logs it
        print(f"error: {parts.hostname}:{port}: {exc or type(exc).__name__}", file=sys.stderr)
        return 1


async def _probe(host: str, port: int, unit_id: int, register: ModbusRegister, request_timeout: float) -> int:
    client = await open_client(host, port, request_timeout)
    try:
        width = WIDTH[register.data_type]
        response = await read_block(client, register.table, register.address, width, unit_id)
    finally:
        client.close()
    where = f"{register.table} {register.address}" + (f"..{register.address + width - 1}" if width > 1 else "")
    if response.isError():
        code = response.exception_code
        print(f"error: {host}:{port} unit {unit_id} answered {where} with {exception_name(code)}", file=sys.stderr)
        return 1
    if register.table in BIT_TABLES:
        value = 1.0 if response.bits[0] else 0.0
        print(f"{where}: {int(value)}", file=sys.stderr)
    else:
        words = list(response.registers[:width])
        word_order, byte_order = register.word_order or "big", register.byte_order or "big"
        value = decode_registers(words, register.data_type, word_order, byte_order)
        raw = " ".join(f"0x{word:04X}" for word in words)
        print(
            f"{where} {register.data_type} (word order {word_order}, byte order {byte_order}): {raw}", file=sys.stderr
        )
    print(f"{value:.12g}")
    return 0

"""Loopback ports for the servers benches and tests start: the one place that decides how they are picked."""

from __future__ import annotations

import functools
import random
import socket
from pathlib import Path


def free_port() -> int:
    """A loopback port nothing listens on, for a server a bench or test starts (often in another process) to bind.

    Taken below the kernel's ephemeral range, not from `bind(0)`: a port the kernel hands out for `bind(0)` comes from
    the range it also gives outgoing connections, so between this probe and the server's bind a connection (to
    PostgreSQL, Redis, another test server) could be given it, and the server would fail to start. Below the range
    only listeners compete, and each port is handed out once per process.
    """
    low = _ephemeral_low()
    if low - _PORTS_FROM < 1_000:  # a kernel whose ephemeral range starts low: its own choice
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            chosen: int = sock.getsockname()[1]
            return chosen
    for _ in range(1_000):
        port = _port_picker.randrange(_PORTS_FROM, low)
        if port in _ports_handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _ports_handed_out.add(port)
        return port
    raise RuntimeError(f"no free port between {_PORTS_FROM} and {low}")


_PORTS_FROM = 20_000
_ports_handed_out: set[int] = set()
_port_picker = random.Random()


@functools.cache
def _ephemeral_low() -> int:
    """The lowest port of the kernel's ephemeral range (Linux; the IANA range's start elsewhere)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 49_152

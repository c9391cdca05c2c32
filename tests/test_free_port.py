"""`bench.ports.free_port`, which the tests and benches that start a server in another process rely on."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from bench import ports


class _Scripted:
    """Stands in for the port picker's random generator: the ports to try, in order."""

    def __init__(self, tries: list[int]) -> None:
        self._tries: Iterator[int] = iter(tries)

    def randrange(self, start: int, stop: int) -> int:
        port = next(self._tries)
        assert start <= port < stop
        return port


pytestmark = pytest.mark.skipif(
    ports._ephemeral_low() - ports._PORTS_FROM < 1_000, reason="the kernel's ephemeral range starts low here"
)


def test_ports_are_below_the_ephemeral_range_distinct_and_bindable() -> None:
    low = ports._ephemeral_low()
    picked = [ports.free_port() for _ in range(20)]
    assert len(set(picked)) == len(picked)
    for port in picked:
        assert ports._PORTS_FROM <= port < low
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
            sock.listen()


def test_a_port_with_a_listener_or_already_given_is_passed_over(monkeypatch: pytest.MonkeyPatch) -> None:
    given, busy, wanted = ports.free_port(), ports.free_port(), ports.free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", busy))
        holder.listen()
        monkeypatch.setattr(ports, "_port_picker", _Scripted([busy, given, wanted]))
        monkeypatch.setattr(ports, "_ports_handed_out", {given})
        assert ports.free_port() == wanted

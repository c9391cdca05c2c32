"""`tests.conftest.free_port`, which every test that starts a server in another process relies on."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests import conftest


class _Scripted:
    """Stands in for the port picker's random generator: the ports to try, in order."""

    def __init__(self, ports: list[int]) -> None:
        self._ports: Iterator[int] = iter(ports)

    def randrange(self, start: int, stop: int) -> int:
        port = next(self._ports)
        assert start <= port < stop
        return port


pytestmark = pytest.mark.skipif(
    conftest._ephemeral_low() - conftest._PORTS_FROM < 1_000, reason="the kernel's ephemeral range starts low here"
)


def test_ports_are_below_the_ephemeral_range_distinct_and_bindable() -> None:
    low = conftest._ephemeral_low()
    ports = [conftest.free_port() for _ in range(20)]
    assert len(set(ports)) == len(ports)
    for port in ports:
        assert conftest._PORTS_FROM <= port < low
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
            sock.listen()


def test_a_port_with_a_listener_or_already_given_is_passed_over(monkeypatch: pytest.MonkeyPatch) -> None:
    given, busy, wanted = conftest.free_port(), conftest.free_port(), conftest.free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", busy))
        holder.listen()
        monkeypatch.setattr(conftest, "_port_picker", _Scripted([busy, given, wanted]))
        monkeypatch.setattr(conftest, "_ports_handed_out", {given})
        assert conftest.free_port() == wanted

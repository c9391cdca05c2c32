"""What server/ws/fastws.py takes from uvicorn's sans-I/O WebSocket protocol, checked against the installed release.

fastws.py subclasses `WebSocketsSansIOProtocol` and reads and writes some of its private attributes. A uvicorn
release that renames one would break dashboards in ways other tests see only as timeouts; this test names the
missing piece instead, so whoever upgrades uvicorn knows what to port (or which ceiling to keep in pyproject.toml).
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.asyncio.client import connect

from haltless.server.ws.fastws import DashboardWSProtocol
from tests.conftest import EVENT_TIMEOUT, RunningServer

# Methods fastws.py overrides or calls.
METHODS = (
    "handle_connect",
    "handle_close",
    "connection_lost",
    "send_receive_event_to_app",
    "send_500_response",
    "run_asgi",
    "receive",
    "send",
)
# Attributes fastws.py reads or replaces on a protocol whose handshake is done.
ATTRIBUTES = (
    "app",
    "scope",
    "request",
    "response",
    "queue",
    "writable",
    "frames",
    "read_paused",
    "transport",
    "conn",
    "loop",
    "logger",
    "handshake_complete",
    "close_sent",
    "disconnected",
    "close_timer",
)


def _complaint(missing: list[str]) -> str:
    return (
        f"uvicorn {uvicorn.__version__}: WebSocketsSansIOProtocol no longer has {', '.join(missing)}, which "
        "haltless/server/ws/fastws.py relies on; port fastws.py to this release or keep uvicorn below it in pyproject.toml"
    )


def test_the_protocol_class_has_every_method_fastws_uses() -> None:
    missing = [name for name in METHODS if not callable(getattr(WebSocketsSansIOProtocol, name, None))]
    assert not missing, _complaint(missing)
    assert issubclass(DashboardWSProtocol, WebSocketsSansIOProtocol)


async def test_an_upgraded_socket_has_every_attribute_fastws_uses(server: RunningServer) -> None:
    """A real upgrade on the test server (which runs DashboardWSProtocol, as `haltless serve` does)."""
    async with connect(server.ws_url, open_timeout=EVENT_TIMEOUT) as ws:
        protocols: set[Any] = server.server.server_state.connections
        upgraded = [p for p in protocols if isinstance(p, DashboardWSProtocol)]
        assert len(upgraded) == 1, "the server's connection set should hold our protocol for the socket"
        protocol = upgraded[0]
        missing = [name for name in ATTRIBUTES if not hasattr(protocol, name)]
        assert not missing, _complaint(missing)
        assert protocol.handshake_complete
        # The protocol still works as fastws.py drives it: a bad token is refused with the documented code.
        await ws.send("not a token")
        await asyncio.wait_for(ws.wait_closed(), 30)
    assert ws.close_code == 4001

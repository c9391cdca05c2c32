"""Real receivers for notifications: an HTTP server and an SMTP server on loopback, and a clock tests drive."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from haltless.core.clock import ManualClock
from haltless.server.clock import SystemClock
from tests.conftest import RunningServer, free_port, wait_until

SMTP_USER = "haltless"
SMTP_PASSWORD = "relay-password-1"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int


@dataclass
class WebhookReceiver:
    """Records every POST; answers `status` (with Retry-After when it is 503)."""

    port: int
    requests: list[Received] = field(default_factory=list)
    status: int = 200
    retry_after: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def delivered(self) -> list[Received]:
        return [r for r in list(self.requests) if r.status < 300]


class _Receiver(ThreadingHTTPServer):
    # The dispatcher sends a batch at once; socketserver's default backlog of 5 would reset the rest.
    request_queue_size = 128


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    state = WebhookReceiver(port=0)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status = state.status
            state.requests.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body, status))
            self.send_response(status)
            if status == 503 and state.retry_after is not None:
                self.send_header("Retry-After", state.retry_after)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = _Receiver(("127.0.0.1", 0), Handler)
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=10)


@dataclass
class MailRelay:
    port: int
    messages: list[Message] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    logged_in: list[bool] = field(default_factory=list)  # per message: whether its session had logged in


@pytest.fixture
def smtp_relay() -> Iterator[MailRelay]:
    """A real SMTP server (aiosmtpd) on loopback that wants SMTP_USER / SMTP_PASSWORD."""
    relay = MailRelay(port=free_port())

    class Handler:
        async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
            content = envelope.original_content or b""
            relay.messages.append(message_from_bytes(content))
            relay.envelopes.append((str(envelope.mail_from), list(envelope.rcpt_tos)))
            relay.logged_in.append(bool(session.authenticated))
            return "250 OK"

    def authenticator(server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login == SMTP_USER.encode()
            and data.password == SMTP_PASSWORD.encode()
        )
        return AuthResult(success=ok, handled=False)

    controller = Controller(
        Handler(),
        hostname="127.0.0.1",
        port=relay.port,
        authenticator=authenticator,
        auth_require_tls=False,
    )
    controller.start()
    yield relay
    controller.stop()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(SystemClock().now_us())


@pytest.fixture
def server(server_factory: Callable[..., RunningServer], clock: ManualClock) -> RunningServer:
    """The tests' server (and the `tenant` fixture's): webhooks may reach loopback, the notification dispatcher
    runs on `clock`."""
    running = server_factory(ws_heartbeat_interval=30.0, webhook_allow_networks="127.0.0.0/8")
    running.state.notifier.clock = clock.now_us
    return running


async def run_cycle(server: RunningServer) -> None:
    """Wake the dispatcher and wait for a cycle that started after now (so it sees the clock as it is)."""
    notifier = server.state.notifier
    mark = notifier.cycles_started
    notifier.wake_threadsafe()
    await wait_until(lambda: notifier.cycles_finished > mark, "a notification cycle")

"""`haltless watch`: the live stream of a tenant in the terminal, one line per event, coloured by severity."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from rich.console import Console
from rich.markup import escape

from haltless.client._client import AsyncHaltlessClient
from haltless.client._events import (
    Alert,
    AlertAcknowledged,
    AlertEscalated,
    AlertResolved,
    AlertShelved,
    AlertUnshelved,
    Connected,
    Event,
    GaveUp,
    Heartbeat,
    MachineStatusChanged,
    Reconnecting,
    ResyncRequired,
    SensorUpdate,
    StreamStatus,
)
from haltless.client._exceptions import HaltlessClientError

EVENT_TYPES = (
    "sensor_update",
    "alert",
    "alert_resolved",
    "alert_acknowledged",
    "alert_updated",
    "alert_shelved",
    "alert_unshelved",
    "alert_escalated",
    "alert_flapping",
    "machine_status",
    "heartbeat",
)
SEVERITY_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}
STATUS_STYLE = {
    "healthy": "green",
    "warning": "yellow",
    "critical": "bold red",
    "offline": "bright_black",
    "maintenance": "blue",
}
# Look the machine list up again at most this often when an event names a machine we do not know yet.
NAME_REFRESH_SECONDS = 5.0


@dataclass
class WatchOptions:
    """What `haltless watch` was asked to do."""

    url: str
    email: str | None = None
    password: str | None = None
    token: str | None = None
    machines: Sequence[str] = ()
    types: Sequence[str] = ()
    heartbeat_interval: float = 15.0


@dataclass
class _Names:
    """Machine id → name, so operators read "Press 01" rather than a UUID."""

    client: AsyncHaltlessClient
    names: dict[str, str] = field(default_factory=dict)
    loaded_at: float = -NAME_REFRESH_SECONDS

    async def load(self) -> None:
        self.loaded_at = time.monotonic()
        offset = 0
        while True:
            page = await self.client.list_machines(limit=1000, offset=offset)
            self.names.update({machine.id: machine.name for machine in page.items})
            offset += len(page.items)
            if not page.items or offset >= page.total:
                return

    async def name(self, machine_id: str) -> str:
        if machine_id not in self.names and time.monotonic() - self.loaded_at >= NAME_REFRESH_SECONDS:
            # Names are a nicety; a failed lookup must not stop the stream.
            with contextlib.suppress(HaltlessClientError):
                await self.load()
        return self.names.get(machine_id, machine_id[:8])


def _clock(moment: datetime | None) -> str:
    return (moment.astimezone() if moment is not None else datetime.now().astimezone()).strftime("%H:%M:%S")


def _status_text(status: str) -> str:
    return f"[{STATUS_STYLE.get(status, 'white')}]{escape(status)}[/]"


async def _line(event: Event | StreamStatus, names: _Names) -> str:
    """One line of console markup for an event or a status change."""
    if isinstance(event, SensorUpdate):
        name = escape(await names.name(event.machine_id))
        unit = f" {escape(event.unit)}" if event.unit else ""
        return (
            f"[dim]{_clock(event.timestamp)}[/]  [bold]{name:<14}[/] {escape(event.metric_name):<16}"
            f" {event.value:>10.2f}{unit}"
        )
    if isinstance(event, Alert):
        style = SEVERITY_STYLE.get(event.severity, "white")
        name = escape(await names.name(event.machine_id))
        values = ""
        if event.metric_value is not None and event.threshold_value is not None:
            values = f" ({event.metric_value:g}, threshold {event.threshold_value:g})"
        return (
            f"[dim]{_clock(event.created_at)}[/]  [{style}]▲ {escape(event.severity.upper())}[/]"
            f" [bold]{name}[/]: [{style}]{escape(event.message)}[/]{values}"
        )
    if isinstance(event, AlertResolved):
        name = escape(await names.name(event.machine_id))
        return (
            f"[dim]{_clock(event.resolved_at)}[/]  [green]✔ resolved[/] [bold]{name}[/]:"
            f" {escape(event.severity)} alert {escape(event.alert_id[:8])} ({escape(event.resolution)})"
        )
    if isinstance(event, AlertAcknowledged):
        name = escape(await names.name(event.machine_id))
        return (
            f"[dim]{_clock(event.acknowledged_at)}[/]  ✓ acknowledged [bold]{name}[/]:"
            f" alert {escape(event.alert_id[:8])}{_comment(event.comment)}"
        )
    if isinstance(event, AlertShelved):
        name = escape(await names.name(event.machine_id))
        return (
            f"[dim]{_clock(event.shelved_at)}[/]  ⏸ shelved [bold]{name}[/]: alert {escape(event.alert_id[:8])}"
            f" until {_clock(event.shelved_until)}{_comment(event.comment)}"
        )
    if isinstance(event, AlertUnshelved):
        name = escape(await names.name(event.machine_id))
        return f"[dim]{_clock(event.unshelved_at)}[/]  ▶ unshelved [bold]{name}[/]: alert {escape(event.alert_id[:8])}"
    if isinstance(event, AlertEscalated):
        style = SEVERITY_STYLE.get(event.severity, "white")
        name = escape(await names.name(event.machine_id))
        return (
            f"[dim]{_clock(event.escalated_at)}[/]  [{style}]⇑ escalated[/] [bold]{name}[/]:"
            f" alert {escape(event.alert_id[:8])}{_raised(event.previous_severity, event.severity)}"
        )
    if isinstance(event, ResyncRequired):
        return f"[dim]{_clock(None)}[/]  [yellow]↻ events may have been missed[/]: {escape(event.reason)}"
    if isinstance(event, MachineStatusChanged):
        name = escape(await names.name(event.machine_id))
        return (
            f"[dim]{_clock(event.timestamp)}[/]  ■ [bold]{name}[/] "
            f"{_status_text(event.old_status)} → {_status_text(event.new_status)}"
        )
    if isinstance(event, Heartbeat):
        return f"[dim]{_clock(event.server_time)}  ♥ heartbeat[/]"
    if isinstance(event, Connected):
        return f"[dim]{_clock(None)}[/]  [green]● connected[/] to {escape(event.url)}"
    if isinstance(event, Reconnecting):
        return (
            f"[dim]{_clock(None)}[/]  [yellow]⟳ reconnecting in {event.delay:.1f} s[/]"
            f" (attempt {event.attempt}): {escape(event.reason)}"
        )
    if isinstance(event, GaveUp):
        return f"[dim]{_clock(None)}[/]  [bold red]✖ gave up[/]: {escape(event.reason)}"
    if isinstance(event, Event):
        return f"[dim]{_clock(None)}  {escape(event.type)}: {escape(str(dict(event.raw)))}[/]"
    return escape(str(event))


def _raised(previous: str, severity: str) -> str:
    return f" {escape(previous)} → {escape(severity)}" if previous and previous != severity else ""


def _comment(comment: str | None) -> str:
    return f" [italic]“{escape(comment)}”[/]" if comment else ""


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


async def _resolve_machines(wanted: Sequence[str], names: _Names) -> list[str]:
    """Machine ids for `--machine` values given as ids or (case-insensitive) names."""
    by_name = {name.lower(): machine_id for machine_id, name in names.names.items()}
    ids = []
    for value in wanted:
        if _is_uuid(value):
            ids.append(value.lower())
        elif value.lower() in by_name:
            ids.append(by_name[value.lower()])
        else:
            raise HaltlessClientError(f"no machine named {value!r}")
    return ids


async def watch(options: WatchOptions, console: Console) -> None:
    """Print the stream until interrupted; raises HaltlessClientError when it cannot go on."""
    async with AsyncHaltlessClient(
        options.url, email=options.email, password=options.password, token=options.token
    ) as client:
        names = _Names(client)
        await names.load()  # also logs in, so bad credentials fail here with the server's words
        machine_ids = await _resolve_machines(options.machines, names) if options.machines else None
        console.print(f"[dim]watching {escape(client.base_url)} (Ctrl-C stops)[/]")
        stream = client.stream(
            machine_ids=machine_ids,
            types=options.types or None,
            status_events=True,
            heartbeat_interval=options.heartbeat_interval,
        )
        async with stream:
            async for event in stream:
                console.print(await _line(event, names))


def run_watch(options: WatchOptions) -> int:
    """The `haltless watch` command: 0 after Ctrl-C, 1 when the stream cannot go on."""
    console = Console(highlight=False, soft_wrap=True)
    errors = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        asyncio.run(watch(options, console))
    except KeyboardInterrupt:
        return 0
    except HaltlessClientError as exc:
        errors.print(f"[bold red]error:[/] {escape(str(exc))}")
        return 1
    return 0

"""The `haltless` command. Thin: parses flags, builds Settings, calls into the layers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from haltless.core.models import Role
from haltless.settings import Settings, settings_problem

app = typer.Typer(help="Haltless: keeps industrial machines from halting unexpectedly.", no_args_is_help=True)
admin_app = typer.Typer(help="Administrative commands that work on the database directly.", no_args_is_help=True)
app.add_typer(admin_app, name="admin")
user_app = typer.Typer(
    help="Users of every tenant: list, disable, enable, delete, set-role, reset-password, sign-out. Running servers "
    "follow within a second: the user's tokens are refused and open dashboards closed (4004).",
    no_args_is_help=True,
)
admin_app.add_typer(user_app, name="user")

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="Where the embedded database and secrets live.")]
DatabaseUrl = Annotated[str | None, typer.Option("--database-url", help="SQLAlchemy URL of the database.")]
UserArg = Annotated[
    str, typer.Argument(metavar="USER", help="The user's id, or email (several tenants may have a user with it).")
]
TenantOption = Annotated[
    str | None, typer.Option("--tenant-id", help="The user's tenant: needed when USER is an email several have.")
]


def _settings(data_dir: Path | None, database_url: str | None) -> Settings:
    """The settings, or exit 2 with one line per bad one (naming its environment variable and the fix)."""
    overrides: dict[str, Any] = {}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if database_url is not None:
        overrides["database_url"] = database_url
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        typer.echo(settings_problem(exc), err=True)
        raise typer.Exit(2) from None


def _reachable_database(settings: Settings) -> None:
    """Exit 2 with one line when the database cannot be reached, before a server starts on it."""
    from haltless.store.database import database_problem

    problem = _run(database_problem(settings.effective_database_url))
    if problem is not None:
        typer.echo(f"error: HALTLESS_DATABASE_URL: {problem}", err=True)
        raise typer.Exit(2)


def _run(coro: Any) -> Any:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:  # pragma: no cover - uvloop is a dependency on every supported platform
        return asyncio.run(coro)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="Server processes on this port (above 1 needs PostgreSQL and Redis).")
    ] = 1,
) -> None:
    """Run the server."""
    from haltless.server.runner import serve as run_server
    from haltless.server.runner import serve_workers

    settings = _settings(data_dir, database_url)
    _reachable_database(settings)
    if workers == 1:
        run_server(settings, host=host, port=port, log_level=log_level)
        return
    # Worker processes read their settings from the environment: hand the flags down that way.
    if data_dir is not None:
        os.environ["HALTLESS_DATA_DIR"] = str(data_dir)
    if database_url is not None:
        os.environ["HALTLESS_DATABASE_URL"] = database_url
    try:
        serve_workers(settings, host=host, port=port, workers=workers, log_level=log_level)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@app.command()
def demo(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    machines: Annotated[int, typer.Option(min=1, max=500, help="How many simulated machines.")] = 6,
    data_dir: DataDir = None,
) -> None:
    """Run the server with a demo tenant and a simulated fleet."""
    from haltless.demo.runner import run_demo

    settings = _settings(data_dir, None)
    _reachable_database(settings)
    with contextlib.suppress(KeyboardInterrupt):
        _run(run_demo(settings, host=host, port=port, machines=machines))


agent_app = typer.Typer(help="Run the edge agent (--config …), or set up its sources (browse, probe).")
app.add_typer(agent_app, name="agent")


@agent_app.callback(invoke_without_command=True)
def agent(
    ctx: typer.Context,
    config: Annotated[
        Path | None, typer.Option("--config", help="The agent's TOML config file (see docs/agent.md).")
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="One pass of finite sources, send everything, exit.")] = False,
) -> None:
    """Run the edge agent: capture readings, buffer them on disk, forward them to the server."""
    if ctx.invoked_subcommand is not None:
        return
    if config is None:
        ctx.fail("Missing option '--config' (or a command: browse, probe).")
    from haltless.agent.command import run_command

    raise typer.Exit(run_command(config, once=once))


@agent_app.command("browse")
def agent_browse(
    endpoint: Annotated[str, typer.Argument(help="The server, e.g. opc.tcp://192.168.1.10:4840.")],
    username: Annotated[str | None, typer.Option(help="Log in as this user (default: anonymous).")] = None,
    password_env: Annotated[
        str | None, typer.Option("--password-env", help="Environment variable holding the password.")
    ] = None,
    security_policy: Annotated[str, typer.Option(help="None or Basic256Sha256.")] = "None",
    security_mode: Annotated[str | None, typer.Option(help="Sign or SignAndEncrypt (the default).")] = None,
    certificate: Annotated[Path | None, typer.Option(help="The agent's certificate (DER or PEM).")] = None,
    private_key: Annotated[Path | None, typer.Option(help="Its private key.")] = None,
    server_certificate: Annotated[Path | None, typer.Option(help="The server's certificate, trusted.")] = None,
    max_nodes: Annotated[int, typer.Option(min=1, help="Stop after this many variables.")] = 1000,
) -> None:
    """Print an OPC UA server's variables as a source block to paste into the agent's config file."""
    from haltless.agent.browse import browse_command

    fields: dict[str, object] = {"endpoint": endpoint, "security_policy": security_policy}
    optional = {
        "username": username,
        "security_mode": security_mode,
        "certificate": certificate,
        "private_key": private_key,
        "server_certificate": server_certificate,
    }
    fields |= {key: value for key, value in optional.items() if value is not None}
    if password_env is not None:
        password = os.environ.get(password_env)
        if password is None:
            typer.echo(f"error: --password-env: the environment variable {password_env} is not set", err=True)
            raise typer.Exit(2)
        fields["password"] = password
    raise typer.Exit(browse_command(fields, max_nodes=max_nodes))


@agent_app.command("probe")
def agent_probe(
    url: Annotated[str, typer.Argument(help="The device, e.g. modbus://192.168.1.20:502.")],
    address: Annotated[int, typer.Option(help="0-based address of the (first) register.")],
    unit: Annotated[int, typer.Option(help="Unit id (device id) behind the address.")] = 1,
    data_type: Annotated[
        str | None,
        typer.Option("--type", help="int16, uint16, int32, uint32, float32, float64, bool (default uint16/bool)."),
    ] = None,
    table: Annotated[str, typer.Option(help="holding, input, coil or discrete_input.")] = "holding",
    word_order: Annotated[str, typer.Option(help="big (most significant word first) or little.")] = "big",
    byte_order: Annotated[str, typer.Option(help="big (high byte first) or little.")] = "big",
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the device.")] = 3.0,
) -> None:
    """Read one value from a Modbus TCP device and print it."""
    from haltless.agent.probe import probe_command

    raise typer.Exit(
        probe_command(
            url,
            unit_id=unit,
            address=address,
            table=table,
            data_type=data_type,
            word_order=word_order,
            byte_order=byte_order,
            timeout=timeout,
        )
    )


@admin_app.command("create-tenant")
def create_tenant_command(
    name: Annotated[str, typer.Option(help="Tenant name.")],
    email: Annotated[str, typer.Option(help="Email of the first admin user.")],
    password: Annotated[str, typer.Option(help="Password of the first admin user (8+ characters).")],
    reuse_email: Annotated[
        bool, typer.Option("--reuse-email", help="Allow an email that already has a user in another tenant.")
    ] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Create a tenant and its first admin; prints {"tenant_id": ..., "user_id": ...}."""
    from haltless.admin import create_tenant
    from haltless.errors import HaltlessError

    if len(password) < 8:
        typer.echo("error: the password needs at least 8 characters", err=True)
        raise typer.Exit(2)
    if "@" not in email:
        typer.echo("error: not an email address", err=True)
        raise typer.Exit(2)
    try:
        tenant_id, user_id = _run(
            create_tenant(
                _settings(data_dir, database_url), name=name, email=email, password=password, reuse_email=reuse_email
            )
        )
    except HaltlessError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps({"tenant_id": tenant_id, "user_id": user_id}))


def _user_json(user: Any) -> str:
    from haltless.core.timefmt import format_micros

    return json.dumps(
        {
            "id": user.id,
            "tenant_id": user.tenant_id,
            "email": user.email,
            "role": user.role.value,
            "disabled": user.disabled,
            "created_at": format_micros(user.created_at),
        }
    )


def _admin_call(make: Any) -> Any:
    """Run an admin coroutine; our errors (not found, last admin, ambiguous email) exit 1 with their detail."""
    from haltless.errors import HaltlessError

    try:
        return _run(make())
    except HaltlessError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(1) from None


@user_app.command("list")
def user_list_command(
    tenant_id: Annotated[str | None, typer.Option("--tenant-id", help="Only this tenant's users.")] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Print every user (of one tenant), one JSON object a line."""
    from haltless.admin import list_users

    settings = _settings(data_dir, database_url)
    for user in _admin_call(lambda: list_users(settings, tenant_id=tenant_id)):
        typer.echo(_user_json(user))


def _change_command(
    user: str, tenant_id: str | None, data_dir: Path | None, database_url: str | None, **change: Any
) -> None:
    from haltless.admin import change_user
    from haltless.core.accounts import UserChange

    settings = _settings(data_dir, database_url)
    typer.echo(_user_json(_admin_call(lambda: change_user(settings, user, UserChange(**change), tenant_id=tenant_id))))


@user_app.command("disable")
def user_disable_command(
    user: UserArg, tenant_id: TenantOption = None, data_dir: DataDir = None, database_url: DatabaseUrl = None
) -> None:
    """Disable a user: no login, every session ends, open dashboards close."""
    _change_command(user, tenant_id, data_dir, database_url, disabled=True)


@user_app.command("enable")
def user_enable_command(
    user: UserArg, tenant_id: TenantOption = None, data_dir: DataDir = None, database_url: DatabaseUrl = None
) -> None:
    """Enable a disabled user again (they log in anew)."""
    _change_command(user, tenant_id, data_dir, database_url, disabled=False)


@user_app.command("set-role")
def user_set_role_command(
    user: UserArg,
    role: Annotated[Role, typer.Argument(metavar="ROLE", help="admin, operator or viewer.")],
    tenant_id: TenantOption = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Give a user another role; their access tokens are refused, a refresh brings one with the new role."""
    _change_command(user, tenant_id, data_dir, database_url, role=role)


@user_app.command("sign-out")
def user_sign_out_command(
    user: UserArg, tenant_id: TenantOption = None, data_dir: DataDir = None, database_url: DatabaseUrl = None
) -> None:
    """End every session of a user (they log in again)."""
    _change_command(user, tenant_id, data_dir, database_url, revoke_sessions=True)


@user_app.command("reset-password")
def user_reset_password_command(
    user: UserArg,
    password: Annotated[
        str,
        typer.Option(prompt=True, hide_input=True, confirmation_prompt=True, help="The new password (8+ characters)."),
    ],
    tenant_id: TenantOption = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Give a user a new password (asked for when --password is left out); every session of theirs ends."""
    from haltless.admin import reset_password

    if len(password) < 8:
        typer.echo("error: the password needs at least 8 characters", err=True)
        raise typer.Exit(2)
    settings = _settings(data_dir, database_url)
    typer.echo(_user_json(_admin_call(lambda: reset_password(settings, user, password, tenant_id=tenant_id))))


@user_app.command("delete")
def user_delete_command(
    user: UserArg, tenant_id: TenantOption = None, data_dir: DataDir = None, database_url: DatabaseUrl = None
) -> None:
    """Delete a user and their sessions; prints who it was."""
    from haltless.admin import delete_user

    settings = _settings(data_dir, database_url)
    typer.echo(_user_json(_admin_call(lambda: delete_user(settings, user, tenant_id=tenant_id))))


@admin_app.command("notifications")
def notifications_command(
    tenant_id: Annotated[str, typer.Option("--tenant-id", help="The tenant whose notifications to show.")],
    state: Annotated[str | None, typer.Option("--state", help="Only pending, delivered or failed ones.")] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Print a tenant's notifications (newest first), one JSON object a line: delivery state and last error."""
    from haltless.admin import list_notifications
    from haltless.core.timefmt import format_micros

    if state not in (None, "pending", "delivered", "failed"):
        typer.echo("error: --state must be pending, delivered or failed", err=True)
        raise typer.Exit(2)
    settings = _settings(data_dir, database_url)
    for item in _admin_call(lambda: list_notifications(settings, tenant_id=tenant_id, state=state)):
        row = {
            "id": item.id,
            "channel_id": item.channel_id,
            "kind": item.kind.value,
            "state": item.state,
            "attempts": item.attempts,
            "last_error": item.last_error,
            "created_at": format_micros(item.created_at),
            "alerts": [alert.alert_id for alert in item.alerts],
        }
        typer.echo(json.dumps(row))


@app.command()
def watch(
    url: Annotated[str, typer.Option(envvar="HALTLESS_URL", help="Server URL.")] = "http://127.0.0.1:8000",
    email: Annotated[str | None, typer.Option(envvar="HALTLESS_EMAIL", help="Log in with this email.")] = None,
    password: Annotated[str | None, typer.Option(envvar="HALTLESS_PASSWORD", help="Password for --email.")] = None,
    token: Annotated[str | None, typer.Option(envvar="HALTLESS_TOKEN", help="An access token instead.")] = None,
    machine: Annotated[list[str] | None, typer.Option(help="Only this machine (id or name); repeatable.")] = None,
    event_type: Annotated[
        list[str] | None,
        typer.Option(
            "--type",
            help="sensor_update, alert, alert_resolved, alert_acknowledged, alert_updated, alert_shelved, "
            "alert_unshelved, alert_escalated, alert_flapping, machine_status or heartbeat; repeatable "
            "(resync_required is always shown).",
        ),
    ] = None,
    heartbeat_interval: Annotated[float, typer.Option(help="The server's heartbeat interval, seconds.")] = 15.0,
) -> None:
    """Print a tenant's live events, one line each; reconnects on its own, Ctrl-C stops."""
    from haltless.client._watch import EVENT_TYPES, WatchOptions, run_watch

    if email is None and token is None:
        typer.echo("error: pass --email and --password (or HALTLESS_EMAIL/HALTLESS_PASSWORD), or --token", err=True)
        raise typer.Exit(2)
    unknown = sorted(set(event_type or ()) - set(EVENT_TYPES))
    if unknown:
        typer.echo(f"error: unknown --type {', '.join(unknown)}; choose from {', '.join(EVENT_TYPES)}", err=True)
        raise typer.Exit(2)
    options = WatchOptions(url, email, password, token, machine or (), event_type or (), heartbeat_interval)
    raise typer.Exit(run_watch(options))


def main() -> None:
    app()

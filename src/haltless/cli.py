"""The `haltless` command. Thin: parses flags, builds Settings, calls into the layers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
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
    _readable_secrets(settings)
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


def _readable_secrets(settings: Settings) -> None:
    """Exit 2 with one line when the configured keys cannot open the stored channel secrets."""
    from haltless.server.keys import secrets_problem

    problem = _run(secrets_problem(settings))
    if problem is not None:
        typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(2)


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
    return _refused_exits(lambda: _run(make()))


def _refused_exits(call: Any) -> Any:
    """`call()`; our errors exit 1 with their detail (exit 2: a secrets key file in the data dir that is damaged)."""
    from haltless.errors import HaltlessError
    from haltless.server.keys import KeyFileError

    try:
        return call()
    except HaltlessError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(1) from None
    except KeyFileError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


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


@admin_app.command("rotate-secrets")
def rotate_secrets_command(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Seal every notification channel's secrets with the first key of HALTLESS_SECRETS_KEYS (plain ones from
    before sealing too); prints how many were current, sealed with an older key, plain or unreadable. Safe to run
    again (it then changes nothing); exit 1 when some no configured key opens."""
    from haltless.admin import rotate_secrets

    settings = _settings(data_dir, database_url)
    counts = _admin_call(lambda: rotate_secrets(settings))
    resealed = counts["old_key"] + counts["plaintext"]
    typer.echo(json.dumps({"resealed": resealed, **counts}))
    if counts["unreadable"]:
        typer.echo(
            f"error: {counts['unreadable']} channel(s) could not be decrypted with the configured keys: add the key "
            "they were sealed with to HALTLESS_SECRETS_KEYS and run this again",
            err=True,
        )
        raise typer.Exit(1)


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


# ---- notification channels, policies and silences ---------------------------------------------------------------
# Same bodies and rules as the admin API (server/service/notification_config.py); a refused one exits 1 with the
# API's detail.

channel_app = typer.Typer(
    help="A tenant's notification channels: list, create-webhook, create-email, update, delete, test. Secrets are "
    "read from a hidden prompt, standard input or an environment variable, never from the command line (where `ps` "
    "would show them), and never printed.",
    no_args_is_help=True,
)
policy_app = typer.Typer(help="A tenant's notification policies: list, create, update, delete.", no_args_is_help=True)
silence_app = typer.Typer(help="A tenant's silences: list, create, expire, delete.", no_args_is_help=True)
admin_app.add_typer(channel_app, name="channel")
admin_app.add_typer(policy_app, name="policy")
admin_app.add_typer(silence_app, name="silence")

TenantId = Annotated[str, typer.Option("--tenant-id", help="The tenant (its id).")]
ChannelArg = Annotated[str, typer.Argument(metavar="CHANNEL", help="The channel's id.")]
SecretEnv = Annotated[
    str | None, typer.Option("--secret-env", metavar="VAR", help="Read the signing secret from this variable.")
]
SecretStdin = Annotated[bool, typer.Option("--secret-stdin", help="Read the signing secret from standard input.")]
PasswordEnv = Annotated[
    str | None, typer.Option("--password-env", metavar="VAR", help="Read the SMTP password from this variable.")
]
PasswordStdin = Annotated[bool, typer.Option("--password-stdin", help="Read the SMTP password from standard input.")]


def _secret(what: str, flag: str, env: str | None, stdin: bool, prompt: bool) -> str | None:
    """A secret from exactly one source (None when none is asked for); exit 2 when the source gives nothing."""
    if (env is not None) + stdin + prompt > 1:
        typer.echo(f"error: choose one of {flag}-env, {flag}-stdin and {flag}-prompt", err=True)
        raise typer.Exit(2)
    value: str | None = None
    if env is not None:
        value = os.environ.get(env)
        if value is None:
            typer.echo(f"error: {flag}-env: the environment variable {env} is not set", err=True)
            raise typer.Exit(2)
    elif stdin:
        value = sys.stdin.readline().rstrip("\r\n")
    elif prompt:
        value = typer.prompt(what, hide_input=True, confirmation_prompt=True)
    if value is not None and not value:
        typer.echo(f"error: the {what.lower()} is empty", err=True)
        raise typer.Exit(2)
    return value


def _config_call(data_dir: Path | None, database_url: str | None, tenant_id: str, work: Any) -> Any:
    """Run `work(config, tenant_id)` (server/service/notification_config.py) against the database; errors exit 1."""
    from haltless.admin import notification_config

    settings = _settings(data_dir, database_url)
    return _admin_call(lambda: notification_config(settings, tenant_id, work))


def _body(model: Any, fields: dict[str, Any]) -> Any:
    from haltless.admin import request_body

    return _refused_exits(lambda: request_body(model, fields))


def _given(**fields: Any) -> dict[str, Any]:
    """The options that were given: the API's defaults (one place) apply to the rest."""
    return {key: value for key, value in fields.items() if value is not None and value != []}


@channel_app.command("list")
def channel_list_command(tenant_id: TenantId, data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Print the tenant's channels, one JSON object a line (secrets only as has_secret / has_password)."""
    from haltless.server.service import notification_config as config

    for channel in _config_call(data_dir, database_url, tenant_id, config.list_channels):
        typer.echo(channel.model_dump_json())


@channel_app.command("create-webhook")
def channel_create_webhook_command(
    tenant_id: TenantId,
    name: Annotated[str, typer.Option(help="The channel's name.")],
    url: Annotated[str, typer.Option(help="Where to POST the notifications.")],
    webhook_format: Annotated[
        str | None, typer.Option("--format", help="haltless (the default), slack, mattermost or teams.")
    ] = None,
    secret_env: SecretEnv = None,
    secret_stdin: SecretStdin = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Create a webhook channel; prints it. The signing secret (16+ characters) is asked for, hidden, unless
    --secret-env or --secret-stdin says where to read it."""
    from haltless.server.schemas.notifications import ChannelCreate
    from haltless.server.service import notification_config as config

    secret = _secret("Signing secret", "--secret", secret_env, secret_stdin, prompt=not (secret_env or secret_stdin))
    webhook = _given(url=url, format=webhook_format, secret=secret)
    body = _body(ChannelCreate, {"name": name, "type": "webhook", "webhook": webhook})
    created = _config_call(data_dir, database_url, tenant_id, lambda where, t: config.create_channel(where, t, body))
    typer.echo(created.model_dump_json())


@channel_app.command("create-email")
def channel_create_email_command(
    tenant_id: TenantId,
    name: Annotated[str, typer.Option(help="The channel's name.")],
    host: Annotated[str, typer.Option(help="The SMTP relay.")],
    from_address: Annotated[str, typer.Option("--from", help="The sender address.")],
    to_addresses: Annotated[list[str], typer.Option("--to", help="A recipient; repeatable (up to 10).")],
    port: Annotated[int | None, typer.Option(help="The relay's port (default 587).")] = None,
    security: Annotated[str | None, typer.Option(help="starttls (the default), tls or none.")] = None,
    username: Annotated[str | None, typer.Option(help="Log in to the relay as this user.")] = None,
    password_env: PasswordEnv = None,
    password_stdin: PasswordStdin = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Create an email channel; prints it. With --username the SMTP password is asked for, hidden, unless
    --password-env or --password-stdin says where to read it."""
    from haltless.server.schemas.notifications import ChannelCreate
    from haltless.server.service import notification_config as config

    ask = username is not None and not (password_env or password_stdin)
    password = _secret("SMTP password", "--password", password_env, password_stdin, prompt=ask)
    email = _given(
        host=host,
        port=port,
        security=security,
        username=username,
        password=password,
        from_address=from_address,
        to_addresses=to_addresses,
    )
    body = _body(ChannelCreate, {"name": name, "type": "email", "email": email})
    created = _config_call(data_dir, database_url, tenant_id, lambda where, t: config.create_channel(where, t, body))
    typer.echo(created.model_dump_json())


@channel_app.command("update")
def channel_update_command(
    channel: ChannelArg,
    tenant_id: TenantId,
    name: Annotated[str | None, typer.Option(help="A new name.")] = None,
    url: Annotated[str | None, typer.Option(help="Webhook: a new URL.")] = None,
    webhook_format: Annotated[str | None, typer.Option("--format", help="Webhook: a new format.")] = None,
    secret_env: SecretEnv = None,
    secret_stdin: SecretStdin = False,
    secret_prompt: Annotated[bool, typer.Option("--secret-prompt", help="Ask for a new signing secret.")] = False,
    host: Annotated[str | None, typer.Option(help="Email: a new SMTP relay.")] = None,
    port: Annotated[int | None, typer.Option(help="Email: a new port.")] = None,
    security: Annotated[str | None, typer.Option(help="Email: starttls, tls or none.")] = None,
    username: Annotated[str | None, typer.Option(help="Email: log in as this user.")] = None,
    no_username: Annotated[
        bool, typer.Option("--no-username", help="Email: stop logging in; the stored SMTP password is removed.")
    ] = False,
    password_env: PasswordEnv = None,
    password_stdin: PasswordStdin = False,
    password_prompt: Annotated[bool, typer.Option("--password-prompt", help="Ask for a new SMTP password.")] = False,
    from_address: Annotated[str | None, typer.Option("--from", help="Email: a new sender.")] = None,
    to_addresses: Annotated[list[str] | None, typer.Option("--to", help="Email: new recipients; repeatable.")] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Change a channel: what is given replaces, the rest (and the stored secret or password) is kept."""
    from haltless.admin import request_body
    from haltless.server.schemas.notifications import ChannelOut, ChannelUpdate
    from haltless.server.service import notification_config as config

    if no_username and (username is not None or password_env is not None or password_stdin or password_prompt):
        typer.echo("error: --no-username removes the username and the password: give neither with it", err=True)
        raise typer.Exit(2)
    secret = _secret("Signing secret", "--secret", secret_env, secret_stdin, secret_prompt)
    password = _secret("SMTP password", "--password", password_env, password_stdin, password_prompt)
    webhook = _given(url=url, format=webhook_format, secret=secret)
    email = _given(
        host=host,
        port=port,
        security=security,
        username=username,
        password=password,
        from_address=from_address,
        to_addresses=to_addresses,
    )
    if no_username:
        # The API's way: the email settings without a username, and an empty password (the stored one removed).
        email["password"] = ""

    async def work(where: Any, tenant: str) -> ChannelOut:
        current = await config.get_channel(where, tenant, channel)
        fields: dict[str, Any] = _given(name=name)
        # The API replaces a type's settings as a whole: start from the stored ones (secrets stay out: kept).
        if webhook:
            old = current.webhook.model_dump(mode="json", exclude={"has_secret"}) if current.webhook else {}
            fields["webhook"] = old | webhook
        if email:
            old = current.email.model_dump(mode="json", exclude={"has_password"}) if current.email else {}
            if no_username:
                old.pop("username", None)
            fields["email"] = _given(**old) | email
        return await config.update_channel(where, tenant, channel, request_body(ChannelUpdate, fields))

    typer.echo(_config_call(data_dir, database_url, tenant_id, work).model_dump_json())


@channel_app.command("delete")
def channel_delete_command(
    channel: ChannelArg, tenant_id: TenantId, data_dir: DataDir = None, database_url: DatabaseUrl = None
) -> None:
    """Delete a channel and its notifications; policies that named it go on with their other channels."""
    from haltless.server.service import notification_config as config

    _config_call(data_dir, database_url, tenant_id, lambda where, t: config.delete_channel(where, t, channel))


@channel_app.command("test")
def channel_test_command(
    channel: ChannelArg, tenant_id: TenantId, data_dir: DataDir = None, database_url: DatabaseUrl = None
) -> None:
    """Send a `test` notification from this host now and print {"ok": ..., "error": ...}; exit 1 when it failed.
    Webhooks reach only what HALTLESS_WEBHOOK_ALLOW_NETWORKS allows, as from the server."""
    from haltless.admin import test_channel

    settings = _settings(data_dir, database_url)
    result = _admin_call(lambda: test_channel(settings, tenant_id, channel))
    typer.echo(result.model_dump_json())
    if not result.ok:
        raise typer.Exit(1)


MatcherMachine = Annotated[list[str] | None, typer.Option("--machine", help="Match this machine id; repeatable.")]
MatcherTag = Annotated[list[str] | None, typer.Option("--tag", help="Match machines with this tag; repeatable.")]
MatcherRule = Annotated[list[str] | None, typer.Option("--rule", help="Match this rule id; repeatable.")]
MatcherSeverity = Annotated[
    list[str] | None, typer.Option("--severity", help="Match info, warning or critical; repeatable.")
]
MatcherMetric = Annotated[list[str] | None, typer.Option("--metric", help="Match this metric; repeatable.")]


@policy_app.command("list")
def policy_list_command(tenant_id: TenantId, data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Print the tenant's policies by position, one JSON object a line."""
    from haltless.server.service import notification_config as config

    for policy in _config_call(data_dir, database_url, tenant_id, config.list_policies):
        typer.echo(policy.model_dump_json())


@policy_app.command("create")
def policy_create_command(
    tenant_id: TenantId,
    name: Annotated[str, typer.Option(help="The policy's name.")],
    channels: Annotated[list[str], typer.Option("--channel", help="Send to this channel (id); repeatable.")],
    is_default: Annotated[bool, typer.Option("--default", help="Take what no other policy matches.")] = False,
    machine: MatcherMachine = None,
    tag: MatcherTag = None,
    rule: MatcherRule = None,
    severity: MatcherSeverity = None,
    metric: MatcherMetric = None,
    kind: Annotated[
        list[str] | None, typer.Option("--kind", help="Match firing, resolved or acknowledged; repeatable.")
    ] = None,
    group_by: Annotated[str | None, typer.Option(help="rule (the default), machine or nothing.")] = None,
    group_wait: Annotated[float | None, typer.Option(help="Seconds the first notification of a group waits.")] = None,
    group_interval: Annotated[float | None, typer.Option(help="Least seconds between two of a group.")] = None,
    position: Annotated[int | None, typer.Option(help="Order among the tenant's policies.")] = None,
    repeat_interval: Annotated[float | None, typer.Option(help="Remind every so many seconds.")] = None,
    escalate_after: Annotated[float | None, typer.Option(help="Escalate when unacknowledged this long.")] = None,
    escalation_channels: Annotated[
        list[str] | None, typer.Option("--escalation-channel", help="Escalate to this channel; repeatable.")
    ] = None,
    escalation_severity: Annotated[str | None, typer.Option(help="Raise escalated alerts to this severity.")] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Create a policy routing matching alert changes to channels; prints it. Options left out take the API's
    defaults (docs/notifications.md)."""
    from haltless.server.schemas.notifications import PolicyCreate
    from haltless.server.service import notification_config as config

    fields = _given(
        name=name,
        channel_ids=channels,
        is_default=is_default or None,
        matchers=_given(
            machine_ids=machine, tags=tag, rule_ids=rule, severities=severity, metric_names=metric, kinds=kind
        ),
        group_by=group_by,
        group_wait=group_wait,
        group_interval=group_interval,
        position=position,
        repeat_interval=repeat_interval,
        escalate_after=escalate_after,
        escalation_channel_ids=escalation_channels,
        escalation_severity=escalation_severity,
    )
    body = _body(PolicyCreate, fields)
    created = _config_call(data_dir, database_url, tenant_id, lambda where, t: config.create_policy(where, t, body))
    typer.echo(created.model_dump_json())


@policy_app.command("delete")
def policy_delete_command(
    policy: Annotated[str, typer.Argument(metavar="POLICY", help="The policy's id.")],
    tenant_id: TenantId,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Delete a policy; changes waiting in its groups are dropped."""
    from haltless.server.service import notification_config as config

    _config_call(data_dir, database_url, tenant_id, lambda where, t: config.delete_policy(where, t, policy))


@policy_app.command("update")
def policy_update_command(
    policy: Annotated[str, typer.Argument(metavar="POLICY", help="The policy's id.")],
    tenant_id: TenantId,
    name: Annotated[str | None, typer.Option(help="A new name.")] = None,
    channels: Annotated[
        list[str] | None, typer.Option("--channel", help="Send to these channels instead (id); repeatable.")
    ] = None,
    is_default: Annotated[
        bool | None, typer.Option("--default/--not-default", help="Take what no other policy matches, or not.")
    ] = None,
    machine: MatcherMachine = None,
    tag: MatcherTag = None,
    rule: MatcherRule = None,
    severity: MatcherSeverity = None,
    metric: MatcherMetric = None,
    kind: Annotated[
        list[str] | None, typer.Option("--kind", help="Match firing, resolved or acknowledged; repeatable.")
    ] = None,
    match_everything: Annotated[
        bool, typer.Option("--match-everything", help="Remove every matcher (the policy matches every change).")
    ] = False,
    group_by: Annotated[str | None, typer.Option(help="rule, machine or nothing.")] = None,
    group_wait: Annotated[float | None, typer.Option(help="Seconds the first notification of a group waits.")] = None,
    group_interval: Annotated[float | None, typer.Option(help="Least seconds between two of a group.")] = None,
    position: Annotated[int | None, typer.Option(help="Order among the tenant's policies.")] = None,
    repeat_interval: Annotated[float | None, typer.Option(help="Remind every so many seconds.")] = None,
    no_repeat: Annotated[bool, typer.Option("--no-repeat", help="Stop reminding.")] = False,
    escalate_after: Annotated[float | None, typer.Option(help="Escalate when unacknowledged this long.")] = None,
    escalation_channels: Annotated[
        list[str] | None, typer.Option("--escalation-channel", help="Escalate to these channels; repeatable.")
    ] = None,
    escalation_severity: Annotated[str | None, typer.Option(help="Raise escalated alerts to this severity.")] = None,
    no_escalation: Annotated[
        bool, typer.Option("--no-escalation", help="Stop escalating (and raising severities).")
    ] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Change a policy as the API's PATCH does: what is given replaces, the rest is kept. Matchers given replace
    all of the policy's matchers; prints the policy."""
    from haltless.server.schemas.notifications import PolicyUpdate
    from haltless.server.service import notification_config as config

    matchers = _given(
        machine_ids=machine, tags=tag, rule_ids=rule, severities=severity, metric_names=metric, kinds=kind
    )
    clash = [
        pair
        for pair, both in (
            ("--match-everything and a matcher", match_everything and bool(matchers)),
            ("--no-repeat and --repeat-interval", no_repeat and repeat_interval is not None),
            (
                "--no-escalation and --escalate-after, --escalation-channel or --escalation-severity",
                no_escalation
                and (escalate_after is not None or bool(escalation_channels) or escalation_severity is not None),
            ),
        )
        if both
    ]
    if clash:
        typer.echo(f"error: choose one of {clash[0]}", err=True)
        raise typer.Exit(2)
    fields = _given(
        name=name,
        channel_ids=channels,
        is_default=is_default,
        matchers=matchers or None,
        group_by=group_by,
        group_wait=group_wait,
        group_interval=group_interval,
        position=position,
        repeat_interval=repeat_interval,
        escalate_after=escalate_after,
        escalation_channel_ids=escalation_channels,
        escalation_severity=escalation_severity,
    )
    # null, as the API takes it: no reminders; no escalation (its channels emptied, its severity unset).
    if match_everything:
        fields["matchers"] = {}
    if no_repeat:
        fields["repeat_interval"] = None
    if no_escalation:
        fields |= {"escalate_after": None, "escalation_channel_ids": [], "escalation_severity": None}
    if not fields:
        typer.echo("error: nothing to change: give at least one option", err=True)
        raise typer.Exit(2)
    body = _body(PolicyUpdate, fields)
    changed = _config_call(
        data_dir, database_url, tenant_id, lambda where, t: config.update_policy(where, t, policy, body)
    )
    typer.echo(changed.model_dump_json())


SilenceArg = Annotated[str, typer.Argument(metavar="SILENCE", help="The silence's id.")]


@silence_app.command("list")
def silence_list_command(tenant_id: TenantId, data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Print the tenant's silences, one JSON object a line (with `active` and the alerts each silenced)."""
    from haltless.server.service import notification_config as config

    for silence in _config_call(data_dir, database_url, tenant_id, config.list_silences):
        typer.echo(silence.model_dump_json())


@silence_app.command("create")
def silence_create_command(
    tenant_id: TenantId,
    ends_at: Annotated[str, typer.Option(help="ISO 8601 with a zone, e.g. 2026-12-24T06:00:00Z.")],
    comment: Annotated[str, typer.Option(help="Why (shown with the silence).")],
    created_by: Annotated[str, typer.Option(help="The tenant's user (id or email) this silence is from.")],
    starts_at: Annotated[str | None, typer.Option(help="ISO 8601 with a zone; default now; may be later.")] = None,
    machine: MatcherMachine = None,
    tag: MatcherTag = None,
    rule: MatcherRule = None,
    severity: MatcherSeverity = None,
    metric: MatcherMetric = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Silence matching alerts (at least one matcher) from --starts-at until --ends-at; prints the silence."""
    from haltless.admin import user_id_of
    from haltless.server.schemas.notifications import SilenceCreate
    from haltless.server.service import notification_config as config

    matchers = _given(machine_ids=machine, tags=tag, rule_ids=rule, severities=severity, metric_names=metric)
    fields = _given(matchers=matchers, starts_at=starts_at, ends_at=ends_at, comment=comment)
    body = _body(SilenceCreate, fields)
    settings = _settings(data_dir, database_url)
    creator = _admin_call(lambda: user_id_of(settings, tenant_id, created_by))

    async def work(where: Any, tenant: str) -> Any:
        return await config.create_silence(where, tenant, body, created_by=creator)

    typer.echo(_config_call(data_dir, database_url, tenant_id, work).model_dump_json())


@silence_app.command("expire")
def silence_expire_command(
    silence: SilenceArg, tenant_id: TenantId, data_dir: DataDir = None, database_url: DatabaseUrl = None
) -> None:
    """End a silence now (a future one never starts); prints it."""
    from haltless.server.service import notification_config as config

    expired = _config_call(data_dir, database_url, tenant_id, lambda where, t: config.expire_silence(where, t, silence))
    typer.echo(expired.model_dump_json())


@silence_app.command("delete")
def silence_delete_command(
    silence: SilenceArg, tenant_id: TenantId, data_dir: DataDir = None, database_url: DatabaseUrl = None
) -> None:
    """Delete a silence."""
    from haltless.server.service import notification_config as config

    _config_call(data_dir, database_url, tenant_id, lambda where, t: config.delete_silence(where, t, silence))


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

"""The server's keys: the JWT secret and the keys sealing channels' secrets, from settings or the data dir."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncEngine

from haltless.core.credentials import new_secret
from haltless.core.secret_box import BadSecretsKey, Sealing, SecretBox, new_key, parse_keys
from haltless.settings import Settings
from haltless.store import notifications, tables
from haltless.store.database import create_engine, make_private_dir

SECRETS_KEY_FILE = "secrets_key"


class KeyFileError(RuntimeError):
    """A key file in the data dir that holds no usable key; the message names the file, never its content."""


def data_dir_secret(settings: Settings, name: str, make: Callable[[], str]) -> str:
    """The secret kept in `data_dir/name` (mode 0600), made with `make` the first time."""
    path: Path = settings.data_dir / name
    if path.exists():
        return path.read_text().strip()
    make_private_dir(settings.data_dir)
    secret = make()
    # O_EXCL: when two processes start at once, exactly one writes; the other reads its secret.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(secret)
    return secret


def load_or_create_jwt_secret(settings: Settings) -> str:
    """HALTLESS_JWT_SECRET, or a secret generated once and kept (mode 0600) in the data dir."""
    if settings.jwt_secret:
        return settings.jwt_secret
    return data_dir_secret(settings, "jwt_secret", new_secret)


def load_secret_box(settings: Settings) -> SecretBox:
    """HALTLESS_SECRETS_KEYS (checked with the settings), or one key generated once into `data_dir/secrets_key`.

    One process (or several sharing the data dir) can live with the generated key; servers on several hosts
    must share HALTLESS_SECRETS_KEYS, as they share the JWT secret."""
    if settings.secrets_keys:
        return SecretBox(settings.secrets_keys)
    path = settings.data_dir / SECRETS_KEY_FILE
    try:
        keys = parse_keys(data_dir_secret(settings, SECRETS_KEY_FILE, new_key))
    except BadSecretsKey as exc:
        raise KeyFileError(f"{path}: {exc}; restore the file, or set HALTLESS_SECRETS_KEYS") from None
    return SecretBox(keys)


class UnreadableSecrets(RuntimeError):
    """Stored channel secrets that none of the configured keys opens: the server refuses to start."""


async def check_secrets_readable(engine: AsyncEngine, box: SecretBox) -> None:
    """Refuse to start when a channel's secrets cannot be opened (a key was dropped or replaced too soon).

    Read-only: several processes starting at once against one PostgreSQL each check on their own."""
    async with engine.connect() as conn:
        counts = await notifications.secrets_sealing(conn, box)
    unreadable = counts[Sealing.UNREADABLE]
    if unreadable:
        channels = "channel's" if unreadable == 1 else "channels'"
        raise UnreadableSecrets(
            f"{unreadable} notification {channels} secrets cannot be decrypted with the configured keys: set "
            "HALTLESS_SECRETS_KEYS to include the key they were sealed with (the new key first, then the old one), "
            "start, and run `haltless admin rotate-secrets`"
        )


async def secrets_problem(settings: Settings) -> str | None:
    """Why the server would refuse to start over channels' secrets (one line, no key material), or None.

    `haltless serve` asks before starting uvicorn, whose own report of a failed start-up is a traceback; a
    database not yet migrated has no channels to check (the server's start-up checks again after migrating)."""
    try:
        box = load_secret_box(settings)
    except KeyFileError as exc:
        return f"{exc}"
    engine = create_engine(settings.effective_database_url)
    try:
        async with engine.connect() as conn:
            if not await conn.run_sync(lambda sync: inspect(sync).has_table(tables.notification_channels.name)):
                return None
        await check_secrets_readable(engine, box)
    except UnreadableSecrets as exc:
        return str(exc)
    finally:
        await engine.dispose()
    return None

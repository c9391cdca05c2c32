"""Settings, read once from `HALTLESS_*` environment variables into an immutable object."""

from __future__ import annotations

from ipaddress import ip_address, ip_network
from pathlib import Path
from typing import Annotated

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from haltless.bus import BusKind, bus_kind
from haltless.core.secret_box import parse_keys

# The databases Haltless runs on, as the URL starts.
DATABASE_SCHEMES = ("sqlite://", "sqlite+aiosqlite://", "postgresql://", "postgres://", "postgresql+asyncpg://")

# How to fix a bad value, per setting; the rest get the generic hint below.
_FIXES = {
    "jwt_secret": "use at least 32 random characters (e.g. `openssl rand -hex 32`), or unset it to have one "
    "generated in the data dir",
    "database_url": "use sqlite+aiosqlite:///path/to/haltless.db or postgresql+asyncpg://user:password@host/db, "
    "or unset it for the SQLite file in the data dir",
    "bus_url": "use memory:// (one process) or redis://host:6379/0",
    "secrets_keys": "use comma-separated Fernet keys, the newest first (make one with `python -c 'from "
    "cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`), or unset it to have one generated "
    "in the data dir",
    "trusted_proxies": "use comma-separated IP addresses or CIDR networks, e.g. 10.0.0.5,192.168.0.0/24",
}


class Settings(BaseSettings):
    """Every knob of the server; see the Settings table of docs/configuration in README.md."""

    model_config = SettingsConfigDict(env_prefix="HALTLESS_", frozen=True, extra="ignore")

    data_dir: Path = Path("./haltless-data")
    database_url: str | None = None
    bus_url: str = "memory://"
    # Redis key prefix: several deployments (or test runs) can share one Redis.
    bus_prefix: str = Field(default="haltless", min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")
    # Events kept per tenant for dashboards that resume after a reconnect (`resume_after`).
    event_history: int = Field(default=10_000, ge=0, le=1_000_000)
    # HMAC key; at least 32 characters (RFC 7518 wants 256 bits for HS256).
    jwt_secret: str | None = Field(default=None, min_length=32)
    # Fernet keys sealing notification channels' secrets at rest, comma-separated: the first seals, every one
    # opens (rotation). Empty: one key generated once into the data dir (`secrets_key`).
    secrets_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    access_token_ttl: int = Field(default=900, gt=0)
    refresh_token_ttl: int = Field(default=2_592_000, gt=0)
    ws_auth_timeout: float = Field(default=10.0, gt=0)
    ws_heartbeat_interval: float = Field(default=15.0, gt=0)
    ws_max_pending: int = Field(default=256, ge=0)
    # Bytes of encoded events a socket may have waiting to be written before it is cut off (close 4008).
    ws_send_buffer_bytes: int = Field(default=1_048_576, ge=1024)
    offline_after: float = Field(default=60.0, gt=0)
    allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Readings whose timestamp lies further than this in the future are rejected (clock skew allowance).
    max_future_skew: float = Field(default=300.0, ge=0)
    # Readings measured longer ago than this many days are pruned in the background; None keeps everything.
    retention_days: float | None = Field(default=None, gt=0)
    # Reverse proxies (IP addresses or CIDR networks) whose X-Forwarded-For / X-Forwarded-Proto are believed:
    # requests from them are taken to come from the address they forward for. Empty: no one's are.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # A session (a login and its refreshes) ends this many seconds after the login, however often it is refreshed.
    session_max_age: int = Field(default=2_592_000, gt=0)
    # Networks (CIDR, comma-separated) webhook channels may reach. Empty: everything but loopback, link-local
    # (cloud metadata included) and multicast. Checked on the address connected to, at send time.
    webhook_allow_networks: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Networks (CIDR) email channels' SMTP relays may be at. Empty: any (a relay on the host itself is common).
    smtp_allow_networks: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # How long a notification is retried before it is marked failed (seconds).
    notification_max_age: float = Field(default=86_400.0, gt=0)
    # The dispatcher looks for work at least this often (seconds), besides being woken when work is written.
    notification_poll_interval: float = Field(default=1.0, gt=0)
    # Delivered and failed notifications, and routed alert changes, are deleted this many days after they were made.
    notification_retention_days: float = Field(default=30.0, gt=0)
    # The dashboard's address as people reach it: the `url` of alerts in notifications.
    public_url: str = "http://localhost:8000"

    @field_validator("webhook_allow_networks", "smtp_allow_networks", mode="before")
    @classmethod
    def _split_networks(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("webhook_allow_networks", "smtp_allow_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        try:
            return [str(ip_network(item, strict=False)) for item in value]
        except ValueError as exc:
            raise ValueError(f"not a CIDR network: {exc}") from None

    @field_validator("secrets_keys", mode="before")
    @classmethod
    def _parse_secrets_keys(cls, value: object) -> object:
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            value = ",".join(value)
        if isinstance(value, str):
            return parse_keys(value) if value.strip() else []
        return value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(DATABASE_SCHEMES):
            scheme = value.split("://", 1)[0] if "://" in value else value[:20]
            raise ValueError(f"unknown database {scheme!r}")
        return value

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip().rstrip("/") for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_addresses(cls, value: list[str]) -> list[str]:
        normalized = []
        for item in value:
            try:
                # Written the way uvicorn's ProxyHeadersMiddleware parses them (host bits of a network cleared).
                normalized.append(str(ip_network(item, strict=False)) if "/" in item else str(ip_address(item)))
            except ValueError:
                raise ValueError(f"{item!r} is neither an IP address nor a CIDR network") from None
        return normalized

    @property
    def multi_process(self) -> bool:
        """True when this server may share its database and bus with other processes (Redis bus)."""
        return bus_kind(self.bus_url) is not BusKind.MEMORY

    @property
    def effective_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file inside the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'haltless.db').resolve()}"


def settings_problem(error: ValidationError) -> str:
    """One line per bad setting: the environment variable, what is wrong, and how to fix it."""
    lines = []
    for item in error.errors():
        name = str(item["loc"][0]) if item["loc"] else ""
        variable = f"HALTLESS_{name.upper()}"
        given = item.get("input")
        message = str(item["msg"]).removeprefix("Value error, ")
        # Secrets and URLs (which may hold a password) are never echoed.
        secret = "secret" in name or "url" in name
        shown = "" if secret or not isinstance(given, str | int | float) else f" (got {given!r})"
        fix = _FIXES.get(name)
        if fix is None:
            field = Settings.model_fields.get(name)
            default = field.default if field is not None else None
            fix = (
                f"the default is {default!r}; see the Configuration table in README.md"
                if isinstance(default, int | float | str) and not isinstance(default, bool)
                else "see the Configuration table in README.md"
            )
        lines.append(f"error: {variable}{shown}: {message}; {fix}")
    return "\n".join(lines)

"""Settings, read once from `HALTLESS_*` environment variables into an immutable object."""

from __future__ import annotations

from ipaddress import ip_address, ip_network
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from haltless.bus import BusKind, bus_kind


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

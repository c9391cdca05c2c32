"""The agent's TOML config file: pydantic models, and errors that name the bad key instead of a traceback."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from haltless.agent.sources.topics import TopicTemplate, template_fields
from haltless.core.readings import MAX_READINGS_PER_REQUEST, normalize_uuid


class ConfigError(Exception):
    """The config file is missing, not TOML, or has a bad value; the message names the key."""


class _Section(BaseModel):
    # Unknown keys are refused so a typo ("batchsize") is an error, not a silently ignored setting.
    model_config = ConfigDict(extra="forbid", frozen=True)


class BufferConfig(_Section):
    """The on-disk store-and-forward buffer."""

    path: Path = Path("haltless-agent-buffer.db")
    max_rows: int = Field(default=1_000_000, ge=1)
    overflow: Literal["drop_oldest", "drop_newest"] = "drop_oldest"


class UplinkConfig(_Section):
    """How readings are forwarded to the server."""

    batch_size: int = Field(default=500, ge=1, le=MAX_READINGS_PER_REQUEST)
    send_interval: float = Field(default=1.0, gt=0)
    timeout: float = Field(default=10.0, gt=0)
    backoff_initial: float = Field(default=0.5, gt=0)
    backoff_max: float = Field(default=60.0, gt=0)
    once_attempts: int = Field(default=5, ge=1)


class MqttSubscription(_Section):
    """One topic template and how its messages become readings."""

    topic: str
    machine: str = "{machine}"
    metric: str = "{metric}"
    unit: str = ""
    value_field: str = "value"
    qos: Literal[0, 1, 2] = 1

    @field_validator("topic")
    @classmethod
    def _topic_parses(cls, value: str) -> str:
        TopicTemplate.parse(value)
        return value

    @model_validator(mode="after")
    def _templates_use_known_names(self) -> MqttSubscription:
        names = TopicTemplate.parse(self.topic).names
        for key in ("machine", "metric", "unit"):
            unknown = template_fields(getattr(self, key)) - names
            if unknown:
                placeholder = ", ".join(f"{{{n}}}" for n in sorted(unknown))
                raise ValueError(f"{key} uses {placeholder}, which the topic {self.topic!r} does not define")
        return self


class MqttSourceConfig(_Section):
    """Readings from MQTT subscriptions."""

    type: Literal["mqtt"]
    name: str = "mqtt"
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: str | None = None
    password_env: str | None = None
    client_id: str | None = None
    # None: persistent session when client_id is set, so the broker keeps QoS 1 messages while the agent is down.
    clean_session: bool | None = None
    keepalive: int = Field(default=60, ge=5)
    subscriptions: list[MqttSubscription] = Field(min_length=1)


class CsvSourceConfig(_Section):
    """Readings replayed from a CSV file."""

    type: Literal["csv"]
    name: str = "csv"
    path: Path
    rate: float = Field(default=0.0, ge=0)  # readings per second; 0 = as fast as the buffer takes them


class SimulatorSourceConfig(_Section):
    """The simulated machines of `haltless demo`."""

    type: Literal["simulator"]
    name: str = "simulator"
    machines: list[str] = Field(min_length=1)
    interval: float = Field(default=1.0, gt=0)
    samples: int | None = Field(default=None, ge=1)
    seed: int = 7
    cycle_seconds: float = Field(default=300.0, gt=0)


SourceConfig = Annotated[MqttSourceConfig | CsvSourceConfig | SimulatorSourceConfig, Field(discriminator="type")]


class AgentConfig(_Section):
    """The whole file."""

    server_url: str
    api_key: str | None = None
    api_key_env: str | None = None
    status_interval: float = Field(default=5.0, gt=0)
    machines: dict[str, str] = Field(default_factory=dict)
    buffer: BufferConfig = BufferConfig()
    uplink: UplinkConfig = UplinkConfig()
    sources: list[SourceConfig] = Field(default_factory=list)

    @field_validator("server_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("machines")
    @classmethod
    def _aliases_name_uuids(cls, value: dict[str, str]) -> dict[str, str]:
        resolved = {}
        for alias, machine_id in value.items():
            canonical = normalize_uuid(machine_id)
            if canonical is None:
                raise ValueError(f"{alias!r} must map to a machine UUID, not {machine_id!r}")
            resolved[alias] = canonical
        return resolved

    @model_validator(mode="after")
    def _one_key_source(self) -> AgentConfig:
        if (self.api_key is None) == (self.api_key_env is None):
            raise ValueError("set exactly one of api_key or api_key_env")
        names = [source.name for source in self.sources]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"source names must be unique; give each a name (duplicated: {', '.join(duplicates)})")
        return self


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part in ("mqtt", "csv", "simulator") and text.endswith("]"):
            continue  # the union tag pydantic inserts; the user never wrote it
        else:
            text += f".{part}" if text else part
    return text or "(top level)"


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        where = _location(item["loc"])
        message = "unknown key" if item["type"] == "extra_forbidden" else item["msg"]
        message = message.removeprefix("Value error, ")
        lines.append(f"  {where}: {message}")
    return "\n".join(lines)


def _resolve_paths(config: AgentConfig, base: Path) -> AgentConfig:
    # Relative paths are relative to the config file, not to wherever the service manager started us.
    buffer = config.buffer.model_copy(update={"path": base / config.buffer.path})
    sources = [
        source.model_copy(update={"path": base / source.path}) if isinstance(source, CsvSourceConfig) else source
        for source in config.sources
    ]
    return config.model_copy(update={"buffer": buffer, "sources": sources})


def _resolve_secrets(config: AgentConfig, environ: Mapping[str, str]) -> AgentConfig:
    update: dict[str, Any] = {}
    if config.api_key_env is not None:
        key = environ.get(config.api_key_env)
        if not key:
            raise ConfigError(f"api_key_env: the environment variable {config.api_key_env} is not set")
        update["api_key"] = key
    sources = []
    for index, source in enumerate(config.sources):
        if isinstance(source, MqttSourceConfig) and source.password_env is not None:
            password = environ.get(source.password_env)
            if password is None:
                raise ConfigError(
                    f"sources[{index}].password_env: the environment variable {source.password_env} is not set"
                )
            source = source.model_copy(update={"password": password})
        sources.append(source)
    update["sources"] = sources
    return config.model_copy(update=update)


def load_config(path: Path, environ: Mapping[str, str]) -> AgentConfig:
    """Read, validate and complete the config file; ConfigError on any problem."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read it ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        config = AgentConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: invalid configuration\n{_describe(exc)}") from None
    return _resolve_secrets(_resolve_paths(config, path.resolve().parent), environ)

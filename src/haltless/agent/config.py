"""The agent's TOML config file: pydantic models, and errors that name the bad key instead of a traceback."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from haltless.agent.sources.machines import MachineDirectory
from haltless.agent.sources.registers import BIT_TABLES, LAST_ADDRESS, WIDTH, DataType, Order, RegisterTable
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


class OpcUaNode(_Section):
    """One variable node of an OPC UA server and the machine, metric and unit its values are readings of."""

    node_id: str | None = None  # e.g. "ns=2;s=Press1.Temperature"
    browse_path: str | None = None  # from the Root node, e.g. "/0:Objects/2:Press1/2:Temperature"
    machine: str
    metric: str
    unit: str = ""
    sampling_interval: float | None = Field(default=None, ge=0)  # seconds; None: the source's
    deadband: float | None = Field(default=None, gt=0)  # absolute; None: every change is reported

    @field_validator("node_id")
    @classmethod
    def _node_id_parses(cls, value: str | None) -> str | None:
        if value is not None:
            # Imported here, not at the top: only configs with OPC UA sources pay for loading asyncua.
            from asyncua import ua
            from asyncua.ua.uaerrors import UaError

            try:
                ua.NodeId.from_string(value)
            except (ValueError, UaError):
                raise ValueError(f"{value!r} is not an OPC UA node id such as 'ns=2;s=Press1.Temperature'") from None
        return value

    @field_validator("browse_path")
    @classmethod
    def _browse_path_parses(cls, value: str | None) -> str | None:
        if value is not None:
            from asyncua import ua
            from asyncua.ua.uaerrors import UaError

            try:
                path = ua.RelativePath.from_string(value)
            except (ValueError, UaError):
                raise ValueError(
                    f"{value!r} is not a browse path such as '/0:Objects/2:Press1/2:Temperature'"
                ) from None
            if not path.Elements:
                raise ValueError("must name at least one browse name")
        return value

    @model_validator(mode="after")
    def _one_reference(self) -> OpcUaNode:
        if (self.node_id is None) == (self.browse_path is None):
            raise ValueError("set exactly one of node_id or browse_path")
        return self

    @property
    def reference(self) -> str:
        """The node as the config names it; part of every reading id, so it must not change between runs."""
        return self.node_id if self.node_id is not None else f"path:{self.browse_path}"


class OpcUaConnection(_Section):
    """How to reach and log in to an OPC UA server (shared by the source and `haltless agent browse`)."""

    endpoint: str
    security_policy: Literal["None", "Basic256Sha256"] = "None"
    security_mode: Literal["Sign", "SignAndEncrypt"] | None = None  # with Basic256Sha256; default SignAndEncrypt
    certificate: Path | None = None  # the agent's certificate (DER or PEM)
    private_key: Path | None = None  # its private key (PEM or DER, unencrypted)
    server_certificate: Path | None = None  # the only server certificate the agent accepts
    username: str | None = None
    password: str | None = None
    password_env: str | None = None
    timeout: float = Field(default=10.0, gt=0)  # seconds per request

    @field_validator("endpoint")
    @classmethod
    def _opc_tcp_url(cls, value: str) -> str:
        if not value.startswith("opc.tcp://"):
            raise ValueError("must start with opc.tcp://")
        return value

    @model_validator(mode="after")
    def _security_is_complete(self) -> OpcUaConnection:
        files = ("certificate", "private_key", "server_certificate")
        if self.security_policy == "None":
            extra = [key for key in ("security_mode", *files) if getattr(self, key) is not None]
            if extra:
                raise ValueError(f'{", ".join(extra)} need(s) security_policy = "Basic256Sha256"')
        else:
            missing = [key for key in files if getattr(self, key) is None]
            if missing:
                raise ValueError(f"security_policy {self.security_policy} needs {', '.join(missing)}")
        if self.password is not None and self.password_env is not None:
            raise ValueError("set at most one of password or password_env")
        if (self.password is not None or self.password_env is not None) and self.username is None:
            raise ValueError("a password needs a username")
        return self

    @property
    def mode(self) -> Literal["None", "Sign", "SignAndEncrypt"]:
        """The message security mode the endpoint must offer."""
        if self.security_policy == "None":
            return "None"
        return self.security_mode or "SignAndEncrypt"


class OpcUaSourceConfig(OpcUaConnection):
    """Readings from OPC UA variables through one subscription."""

    type: Literal["opcua"]
    name: str = "opcua"
    publishing_interval: float = Field(default=0.5, gt=0)  # seconds between the server's notification messages
    sampling_interval: float = Field(default=0.25, ge=0)  # seconds; how often the server samples each node
    queue_size: int = Field(default=100, ge=1)  # changes the server keeps per node between two notifications
    accept_uncertain: bool = False  # store values of Uncertain quality too (Bad ones never are)
    nodes: list[OpcUaNode] = Field(min_length=1)


class ModbusRegister(_Section):
    """One value in a Modbus device and the machine, metric and unit it is a reading of."""

    table: RegisterTable = "holding"
    type: DataType | None = None  # default: uint16 in registers, bool in coils and discrete inputs
    address: int = Field(ge=0, le=LAST_ADDRESS)  # 0-based, as on the wire ("40001" in a manual is address 0)
    word_order: Order | None = None  # None: the source's
    byte_order: Order | None = None
    scale: float = 1.0
    offset: float = 0.0
    machine: str
    metric: str
    unit: str = ""

    @field_validator("type")
    @classmethod
    def _type_fits_table(cls, value: DataType | None, info: ValidationInfo) -> DataType | None:
        table = info.data.get("table")
        if value is not None and table is not None and (table in BIT_TABLES) != (value == "bool"):
            wanted = "bool" if table in BIT_TABLES else "int16, uint16, int32, uint32, float32 or float64"
            raise ValueError(f"{value!r} does not fit table {table!r} (use {wanted})")
        return value

    @field_validator("address")
    @classmethod
    def _fits_the_address_space(cls, value: int, info: ValidationInfo) -> int:
        table = info.data.get("table")
        data_type: DataType = info.data.get("type") or ("bool" if table in BIT_TABLES else "uint16")
        last = value + WIDTH[data_type] - 1
        if last > LAST_ADDRESS:
            raise ValueError(
                f"{value} + {WIDTH[data_type]} registers of {data_type} ends past the last address {LAST_ADDRESS}"
            )
        return value

    @property
    def data_type(self) -> DataType:
        """The type, with the table's default filled in."""
        if self.type is not None:
            return self.type
        return "bool" if self.table in BIT_TABLES else "uint16"


class ModbusSourceConfig(_Section):
    """Readings polled from a Modbus TCP device."""

    type: Literal["modbus"]
    name: str = "modbus"
    host: str
    port: int = Field(default=502, ge=1, le=65535)
    unit_id: int = Field(default=1, ge=0, le=255)
    poll_interval: float = Field(default=1.0, gt=0)  # seconds
    timeout: float = Field(default=3.0, gt=0)  # seconds per request
    word_order: Order = "big"
    byte_order: Order = "big"
    max_gap: int = Field(default=0, ge=0, le=100)  # unused addresses one request may read to save another
    registers: list[ModbusRegister] = Field(min_length=1)


SourceConfig = Annotated[
    MqttSourceConfig | CsvSourceConfig | SimulatorSourceConfig | OpcUaSourceConfig | ModbusSourceConfig,
    Field(discriminator="type"),
]
_SOURCE_TYPES = ("mqtt", "csv", "simulator", "opcua", "modbus")


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
        elif part in _SOURCE_TYPES and text.endswith("]"):
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
    sources: list[SourceConfig] = []
    for index, source in enumerate(config.sources):
        if isinstance(source, CsvSourceConfig):
            source = source.model_copy(update={"path": base / source.path})
        elif isinstance(source, OpcUaSourceConfig):
            source = source.model_copy(update=certificate_files(source, base, f"sources[{index}]."))
        sources.append(source)
    return config.model_copy(update={"buffer": buffer, "sources": sources})


def certificate_files(connection: OpcUaConnection, base: Path, where: str) -> dict[str, Path]:
    """The certificate and key paths, absolute; ConfigError naming the key when a file is missing or unusable."""
    from haltless.agent.sources.certificates import certificate_der, private_key_der

    resolved = {}
    for key in ("certificate", "private_key", "server_certificate"):
        path: Path | None = getattr(connection, key)
        if path is None:
            continue
        path = base / path
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ConfigError(f"{where}{key}: no such file {path}") from None
        except OSError as exc:
            raise ConfigError(f"{where}{key}: cannot read {path} ({exc.strerror})") from None
        try:
            private_key_der(data) if key == "private_key" else certificate_der(data)
        except ValueError as exc:
            raise ConfigError(f"{where}{key}: {path}: {exc}") from None
        resolved[key] = path
    return resolved


def _check_machines(config: AgentConfig) -> None:
    # Sources with fixed mappings name their machines in the file: a typo is a config error, not a skipped reading.
    machines = MachineDirectory(config.machines)
    for index, source in enumerate(config.sources):
        named: list[str] = []
        if isinstance(source, OpcUaSourceConfig):
            table, named = "nodes", [node.machine for node in source.nodes]
        elif isinstance(source, ModbusSourceConfig):
            table, named = "registers", [register.machine for register in source.registers]
        for position, machine in enumerate(named):
            if machines.resolve(machine) is None:
                raise ConfigError(
                    f"sources[{index}].{table}[{position}].machine: {machine!r} is neither a UUID "
                    "nor listed under [machines]"
                )


def _resolve_secrets(config: AgentConfig, environ: Mapping[str, str]) -> AgentConfig:
    update: dict[str, Any] = {}
    if config.api_key_env is not None:
        key = environ.get(config.api_key_env)
        if not key:
            raise ConfigError(f"api_key_env: the environment variable {config.api_key_env} is not set")
        update["api_key"] = key
    sources = []
    for index, source in enumerate(config.sources):
        if isinstance(source, MqttSourceConfig | OpcUaSourceConfig) and source.password_env is not None:
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
    resolved = _resolve_secrets(_resolve_paths(config, path.resolve().parent), environ)
    _check_machines(resolved)
    return resolved

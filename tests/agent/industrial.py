"""Real industrial servers for the agent's tests: an asyncua OPC UA server and a pymodbus TCP server.

Both run on a free loopback port in the test's event loop and can be stopped and started again on the
same port, as a PLC restarts. Certificates are made at test time with `cryptography`; no key is committed.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asyncua import ua
from asyncua.common.node import Node
from asyncua.common.utils import ServiceError
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.server import Server
from asyncua.server.user_managers import UserManager
from asyncua.ua.status_codes import StatusCodes
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

NAMESPACE = "urn:haltless:test-plant"
# The test plant: string node ids, so a restarted server has the same ones.
VARIABLES: dict[str, tuple[str, float | bool]] = {
    "Press1.Temperature": ("°C", 20.0),
    "Press1.Pressure": ("bar", 1.0),
    "Press1.Running": ("", True),
}


@dataclass(frozen=True)
class CertificatePair:
    """A certificate (DER) and its private key (PEM) in files."""

    certificate: Path
    private_key: Path

    @property
    def der(self) -> bytes:
        return self.certificate.read_bytes()


def make_certificate(directory: Path, name: str, application_uri: str, *, server: bool) -> CertificatePair:
    """A self-signed OPC UA application instance certificate: the URI as subject alternative name."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(application_uri), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=True,
                data_encipherment=True,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .sign(key, hashes.SHA256())
    )
    pair = CertificatePair(directory / f"{name}-cert.der", directory / f"{name}-key.pem")
    pair.certificate.write_bytes(certificate.public_bytes(serialization.Encoding.DER))
    pair.private_key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return pair


@dataclass(frozen=True)
class OpcUaSecurity:
    """A server that only takes Basic256Sha256, trusts one client certificate and one user."""

    server: CertificatePair
    trusted_client: CertificatePair
    username: str
    password: str


class _Users(UserManager):
    def __init__(self, username: str, password: str) -> None:
        self._credentials = (username, password)

    def get_user(
        self, iserver: Any, username: str | None = None, password: str | None = None, certificate: Any = None
    ) -> User | None:
        return User(role=UserRole.User) if (username, password) == self._credentials else None


@dataclass
class OpcUaTestServer:
    """An asyncua server with a `Press1` object of variables; restartable on the same port."""

    port: int
    security: OpcUaSecurity | None = None
    server: Server | None = None
    nodes: dict[str, Node] = field(default_factory=dict)

    @property
    def endpoint(self) -> str:
        return f"opc.tcp://127.0.0.1:{self.port}/"

    async def start(self, values: dict[str, ua.DataValue] | None = None) -> None:
        """Serve the plant, with `values` (as a PLC keeps them over a restart) instead of the defaults."""
        security = self.security
        server = Server(user_manager=_Users(security.username, security.password) if security else None)
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name("Haltless test plant")
        if security is not None:
            await server.set_application_uri("urn:haltless:test-plant-server")
            server.set_security_policy(
                [ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt, ua.SecurityPolicyType.Basic256Sha256_Sign]
            )
            server.set_identity_tokens([ua.UserNameIdentityToken])
            await server.load_certificate(str(security.server.certificate))
            await server.load_private_key(str(security.server.private_key))
            trusted = security.trusted_client.der

            async def validate(certificate: x509.Certificate, _: ua.ApplicationDescription) -> None:
                if certificate.public_bytes(serialization.Encoding.DER) != trusted:
                    raise ServiceError(StatusCodes.BadCertificateUntrusted)

            server.set_certificate_validator(validate)
        else:
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        index = await server.register_namespace(NAMESPACE)
        press = await server.nodes.objects.add_object(
            ua.NodeId(ua.String("Press1"), ua.Int16(index)), ua.QualifiedName("Press1", index)
        )
        for name, (unit, default) in VARIABLES.items():
            node = await press.add_variable(
                ua.NodeId(ua.String(name), ua.Int16(index)), ua.QualifiedName(name.split(".")[1], index), default
            )
            if unit:
                info = ua.EUInformation(DisplayName=ua.LocalizedText(unit), Description=ua.LocalizedText(unit))
                units_id = ua.NodeId(ua.String(f"{name}.EngineeringUnits"), ua.Int16(index))
                await node.add_property(units_id, ua.QualifiedName("EngineeringUnits", 0), info)
            if values and name in values:
                await node.write_value(values[name])
            self.nodes[name] = node
        await server.start()
        self.server = server

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
            self.server = None

    def node_id(self, name: str) -> str:
        return f"ns=2;s={name}"

    async def write(
        self, name: str, value: float | bool, at: datetime.datetime | None = None, status: int | None = None
    ) -> ua.DataValue:
        """Set a variable as the PLC would: with its source timestamp and status."""
        variant = ua.Variant(value, ua.VariantType.Boolean if isinstance(value, bool) else ua.VariantType.Double)
        data = ua.DataValue(
            variant,
            StatusCode=ua.StatusCode(ua.UInt32(status if status is not None else StatusCodes.Good)),
            SourceTimestamp=_ua_time(at or datetime.datetime.now(datetime.UTC)),
            ServerTimestamp=_ua_time(datetime.datetime.now(datetime.UTC)),
        )
        await self.nodes[name].write_value(data)
        return data


def _ua_time(moment: datetime.datetime) -> ua.DateTime:
    return ua.DateTime.fromtimestamp(moment.timestamp(), datetime.UTC)


@dataclass
class ModbusTestServer:
    """A pymodbus TCP server for unit 1 with four separate tables; counts the requests it answers."""

    port: int
    holding: list[int]
    input: list[int] = field(default_factory=lambda: [0])
    coils: list[bool] = field(default_factory=lambda: [False])
    discrete_inputs: list[bool] = field(default_factory=lambda: [False])
    requests: int = 0
    server: ModbusTcpServer | None = None

    async def start(self) -> None:
        device = SimDevice(
            id=1,
            simdata=(
                [SimData(0, values=list(self.coils), datatype=DataType.BITS)],
                [SimData(0, values=list(self.discrete_inputs), datatype=DataType.BITS)],
                [SimData(0, values=list(self.holding), datatype=DataType.REGISTERS)],
                [SimData(0, values=list(self.input), datatype=DataType.REGISTERS)],
            ),
        )
        self.server = ModbusTcpServer(device, address=("127.0.0.1", self.port), trace_pdu=self._count)
        await self.server.serve_forever(background=True)

    def _count(self, sending: bool, pdu: Any) -> Any:
        if not sending:
            self.requests += 1
        return pdu

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.shutdown()  # type: ignore[no-untyped-call]
            self.server = None

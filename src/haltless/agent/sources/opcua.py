"""OPC UA as a source: one subscription whose monitored items map nodes to machine, metric and unit.

The server samples each node every `sampling_interval`, queues its changes (beyond the `deadband`, when one
is set) and sends them every `publishing_interval`. Each change becomes a reading stamped with the value's
source timestamp, with an id derived from node, time and value (see `opcua_nodes.datachange_reading`).
When the connection is lost the agent stores what had arrived, reconnects with backoff and subscribes anew;
the current values a new subscription starts with are the readings the server already has, so they count as
duplicates there instead of being stored twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.subscription import DataChangeEvent, OverflowPolicy, StatusChangeEvent, Subscription
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256, SecurityPolicyNone
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.uaerrors import UaStatusCodeError

from haltless.agent.backoff import Backoff
from haltless.agent.buffer import BufferUnusable
from haltless.agent.captured import CapturedReading, now_micros
from haltless.agent.config import OpcUaConnection, OpcUaNode, OpcUaSourceConfig
from haltless.agent.sources import Emit, SourceConfigError, SourceError
from haltless.agent.sources.certificates import application_uri, certificate_der, private_key_der
from haltless.agent.sources.machines import MachineDirectory
from haltless.agent.sources.opcua_nodes import DataChange, NodeMapping, datachange_reading
from haltless.agent.stats import AgentStats

log = logging.getLogger("haltless.agent")
APPLICATION_URI = "urn:haltless:agent"  # used when the agent's certificate names none
# How long the server keeps the agent's session (and its queued values) after the connection is gone.
SESSION_TIMEOUT_MS = 60_000
# Notifications received but not yet buffered; past this asyncua logs and drops new ones (the buffer is stuck).
MAX_QUEUED_NOTIFICATIONS = 100_000
MAX_CHANGES_PER_COMMIT = 1000
DISCONNECT_TIMEOUT_SECONDS = 5.0
_POLICY_URIS = {"None": SecurityPolicyNone.URI, "Basic256Sha256": SecurityPolicyBasic256Sha256.URI}
_MODES = {
    "None": ua.MessageSecurityMode.None_,
    "Sign": ua.MessageSecurityMode.Sign,
    "SignAndEncrypt": ua.MessageSecurityMode.SignAndEncrypt,
}
_LOGIN_REFUSED = frozenset(
    {
        StatusCodes.BadUserAccessDenied,
        StatusCodes.BadIdentityTokenInvalid,
        StatusCodes.BadIdentityTokenRejected,
        StatusCodes.BadUserSignatureInvalid,
    }
)
_CERTIFICATE_REFUSED = frozenset(
    {
        StatusCodes.BadCertificateUntrusted,
        StatusCodes.BadCertificateInvalid,
        StatusCodes.BadCertificateUriInvalid,
        StatusCodes.BadCertificateTimeInvalid,
        StatusCodes.BadCertificateRevoked,
        StatusCodes.BadCertificateUseNotAllowed,
        StatusCodes.BadCertificateHostNameInvalid,
        StatusCodes.BadSecurityChecksFailed,
        StatusCodes.BadSecurityPolicyRejected,
    }
)


class OpcUaRefused(SourceError):
    """The server refused the agent (login, certificate, security settings): retrying cannot help."""


class _SessionLost(Exception):
    """The connection or the subscription ended; the source reconnects."""


def status_name(code: int) -> str:
    """`BadUserAccessDenied` for its code (the low 16 bits carry flags, not the condition)."""
    return ua.StatusCode(ua.UInt32(code & 0xFFFF_0000)).name


def _read(path: Path | None) -> bytes:
    assert path is not None, "the config checked that security settings are complete"
    return path.read_bytes()


async def connect(connection: OpcUaConnection, name: str) -> Client:
    """A client with an active session; OpcUaRefused when the server refuses the agent, and any other
    exception (OSError, TimeoutError, UaError) when the server is unreachable or failed and a retry may help."""
    client = Client(connection.endpoint, timeout=connection.timeout)
    client.session_timeout = SESSION_TIMEOUT_MS
    client.name = client.description = "Haltless agent"
    client.application_uri = APPLICATION_URI
    if connection.username is not None:
        client.set_user(connection.username)
        if connection.password is not None:
            client.set_password(connection.password)
    endpoint = await _matching_endpoint(client, connection, name)
    if connection.security_policy != "None":
        certificate = await asyncio.to_thread(lambda: certificate_der(_read(connection.certificate)))
        key = await asyncio.to_thread(lambda: private_key_der(_read(connection.private_key)))
        server_certificate = await asyncio.to_thread(lambda: certificate_der(_read(connection.server_certificate)))
        # The server matches the session's application URI against the certificate's: take it from there.
        client.application_uri = application_uri(certificate) or APPLICATION_URI
        # The endpoint may present a chain (DER certificates back to back): the server's own comes first.
        if not (endpoint.ServerCertificate or b"").startswith(server_certificate):
            raise OpcUaRefused(
                f"{name}: the certificate of {connection.endpoint} is not the one in server_certificate "
                f"({connection.server_certificate}); if the server's certificate was renewed, save the new one there"
            )
        await client.set_security(
            SecurityPolicyBasic256Sha256, certificate, key, None, server_certificate, _MODES[connection.mode]
        )
    try:
        await client.connect()
    except UaStatusCodeError as exc:
        raise _refusal(exc, connection, name) or exc from None
    return client


async def _matching_endpoint(client: Client, connection: OpcUaConnection, name: str) -> ua.EndpointDescription:
    """The endpoint the config asks for, or OpcUaRefused naming what the server offers instead."""
    endpoints = await client.connect_and_get_server_endpoints()
    policy, mode = _POLICY_URIS[connection.security_policy], _MODES[connection.mode]
    for endpoint in endpoints:
        if endpoint.SecurityPolicyUri == policy and endpoint.SecurityMode == mode:
            break
    else:
        offered = sorted(
            {f"{e.SecurityPolicyUri.rsplit('#', 1)[-1]}/{e.SecurityMode.name.rstrip('_')}" for e in endpoints}
        )
        raise OpcUaRefused(
            f"{name}: {connection.endpoint} offers no endpoint with security_policy {connection.security_policy} "
            f"and security_mode {connection.mode}; it offers {', '.join(offered) or 'none'}"
        )
    tokens = {policy.TokenType for policy in endpoint.UserIdentityTokens}
    if connection.username is None and ua.UserTokenType.Anonymous not in tokens:
        raise OpcUaRefused(f"{name}: {connection.endpoint} allows no anonymous access; set username and password")
    if connection.username is not None and ua.UserTokenType.UserName not in tokens:
        raise OpcUaRefused(f"{name}: {connection.endpoint} takes no user name and password on this endpoint")
    return endpoint


def _refusal(exc: UaStatusCodeError, connection: OpcUaConnection, name: str) -> OpcUaRefused | None:
    code = exc.code
    if code in _LOGIN_REFUSED:
        who = f"the user {connection.username!r}" if connection.username is not None else "anonymous access"
        return OpcUaRefused(
            f"{name}: {connection.endpoint} refused {who} ({status_name(code)}); check username and password"
        )
    if code in _CERTIFICATE_REFUSED:
        return OpcUaRefused(
            f"{name}: {connection.endpoint} refused the agent's certificate ({status_name(code)}); "
            f"trust {connection.certificate} on the server"
        )
    return None


async def disconnect(client: Client) -> None:
    """Close the session if the server is still there; never hangs on a dead connection."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(client.disconnect(), DISCONNECT_TIMEOUT_SECONDS)


@dataclass(frozen=True, slots=True)
class _Monitored:
    """A node the current session monitors."""

    position: int  # in the config's nodes list
    node_id: ua.NodeId


class OpcUaSource:
    """Subscribes, buffers, and after a lost connection reconnects with backoff and subscribes again."""

    finite = False

    def __init__(self, config: OpcUaSourceConfig, machines: MachineDirectory, stats: AgentStats, key: str) -> None:
        self.name = config.name
        self._config = config
        self._key = key  # "sources[2]": where the config's errors are
        self._stats = stats
        self._mappings = [
            NodeMapping(node.reference, machines.resolve(node.machine) or node.machine, node.metric, node.unit)
            for node in config.nodes
        ]
        self._checked = False  # the first session checks every node; later ones go on without a vanished node
        self._reported: set[str] = set()
        self.subscribed = asyncio.Event()  # set while a subscription is active (tests await it)
        self.sessions = 0  # subscriptions made so far, counting reconnects

    async def run(self, emit: Emit) -> None:
        """Stay subscribed until cancelled; SourceError when retrying cannot help."""
        backoff = Backoff(0.5, 30.0)
        while True:
            try:
                await self._session(emit, backoff)
            except (SourceError, BufferUnusable):  # retrying cannot help: the config, the server's refusal, the disk
                raise
            except Exception as exc:  # whatever the network or the server did: the remedy is a new session
                self.subscribed.clear()
                reason = str(exc) or type(exc).__name__
                self._stats.last_error = f"{self.name}: {reason}"
                delay = backoff.next_delay()
                log.warning("%s: %s: %s; reconnecting in %.1fs", self.name, self._config.endpoint, reason, delay)
                await asyncio.sleep(delay)

    async def _session(self, emit: Emit, backoff: Backoff) -> None:
        client = await connect(self._config, self.name)
        try:
            lost = asyncio.Event()

            async def on_lost(_: Exception) -> None:
                lost.set()

            client.connection_lost_callback = on_lost
            monitored = await self._resolve(client)
            subscription = await client.create_subscription(
                self._config.publishing_interval * 1000,
                None,
                queue_maxsize=MAX_QUEUED_NOTIFICATIONS,
                overflow=OverflowPolicy.WARN,
            )
            results = await subscription.create_monitored_items([self._request(m) for m in monitored])
            refused = [
                (m, result) for m, result in zip(monitored, results, strict=True) if isinstance(result, ua.StatusCode)
            ]
            self._problems([(m.position, f"the server cannot monitor it ({result.name})") for m, result in refused])
            if len(refused) == len(monitored):
                raise _SessionLost("the server monitors none of the nodes")
            self._checked = True
            backoff.reset()
            self.sessions += 1
            self.subscribed.set()
            log.info(
                "%s: subscribed to %d node(s) at %s", self.name, len(monitored) - len(refused), self._config.endpoint
            )
            await self._consume(subscription, lost, emit)
        finally:
            self.subscribed.clear()
            client.connection_lost_callback = None
            await disconnect(client)

    async def _resolve(self, client: Client) -> list[_Monitored]:
        """The node ids of the configured nodes that exist and are variables (two requests for all of them)."""
        nodes = self._config.nodes
        paths = [(i, node.browse_path) for i, node in enumerate(nodes) if node.browse_path is not None]
        found: dict[int, ua.NodeId] = {
            i: ua.NodeId.from_string(node.node_id) for i, node in enumerate(nodes) if node.node_id is not None
        }
        problems: list[tuple[int, str]] = []
        if paths:
            results = await client.translate_browsepaths(client.nodes.root.nodeid, [path for _, path in paths])
            for (i, path), result in zip(paths, results, strict=True):
                if result.StatusCode.is_good() and result.Targets:
                    found[i] = result.Targets[0].TargetId
                else:
                    problems.append((i, f"the server has no node at {path} ({result.StatusCode.name})"))
        positions = sorted(found)
        classes = await client.read_attributes([client.get_node(found[i]) for i in positions], AttributeIds.NodeClass)
        monitored = []
        for i, value in zip(positions, classes, strict=True):
            node_class = value.Value.Value if value.Value is not None else None
            if value.StatusCode is not None and not value.StatusCode.is_good():
                problems.append((i, f"the server has no node {nodes[i].reference} ({value.StatusCode.name})"))
            elif node_class != ua.NodeClass.Variable:
                kind = ua.NodeClass(node_class).name if isinstance(node_class, int) else "not a node"
                problems.append((i, f"{nodes[i].reference} is a(n) {kind}, not a variable with a value"))
            else:
                monitored.append(_Monitored(i, found[i]))
        self._problems(problems)
        if not monitored:
            raise _SessionLost("none of the configured nodes is on the server")
        return monitored

    def _problems(self, problems: list[tuple[int, str]]) -> None:
        """Nodes the server does not have: a config error at the first session, a warning later (a restarting
        server may publish its address space piece by piece; the other nodes keep their readings coming)."""
        if not problems:
            return
        lines = [f"{self._key}.nodes[{i}].{_reference_key(self._config.nodes[i])}: {what}" for i, what in problems]
        if not self._checked:
            raise SourceConfigError("\n".join(lines))
        for line in lines:
            log.warning("%s: %s; reading the other nodes", self.name, line)

    def _request(self, monitored: _Monitored) -> ua.MonitoredItemCreateRequest:
        node = self._config.nodes[monitored.position]
        item = ua.ReadValueId()
        item.NodeId = monitored.node_id
        item.AttributeId = AttributeIds.Value
        parameters = ua.MonitoringParameters()
        parameters.ClientHandle = monitored.position
        sampling = node.sampling_interval if node.sampling_interval is not None else self._config.sampling_interval
        parameters.SamplingInterval = sampling * 1000
        parameters.QueueSize = self._config.queue_size
        parameters.DiscardOldest = True
        if node.deadband is not None:
            change_filter = ua.DataChangeFilter()
            change_filter.Trigger = ua.DataChangeTrigger.StatusValue
            change_filter.DeadbandType = ua.DeadbandType.Absolute
            change_filter.DeadbandValue = node.deadband
            parameters.Filter = change_filter
        request = ua.MonitoredItemCreateRequest()
        request.ItemToMonitor = item
        request.MonitoringMode = ua.MonitoringMode.Reporting
        request.RequestedParameters = parameters
        return request

    async def _consume(self, subscription: Subscription, lost: asyncio.Event, emit: Emit) -> None:
        """Buffer notifications until the session ends; what arrived before the end is buffered too."""
        pending: list[tuple[DataChangeEvent, int]] = []
        arrived = asyncio.Event()
        reader = asyncio.create_task(self._receive(subscription, pending, arrived))
        watcher = asyncio.create_task(lost.wait())
        try:
            while not (reader.done() or watcher.done()):
                if pending:
                    await self._commit(pending, emit)
                    continue
                wake = asyncio.create_task(arrived.wait())
                await asyncio.wait({reader, watcher, wake}, return_when=asyncio.FIRST_COMPLETED)
                wake.cancel()
                arrived.clear()
            while pending:  # the server does not send these again: buffer them before reconnecting
                await self._commit(pending, emit)
            if reader.done():
                reader.result()
            raise _SessionLost("the connection to the server was lost")
        finally:
            reader.cancel()
            watcher.cancel()
            await asyncio.gather(reader, watcher, return_exceptions=True)

    async def _receive(
        self, subscription: Subscription, pending: list[tuple[DataChangeEvent, int]], arrived: asyncio.Event
    ) -> None:
        async for event in subscription:
            if isinstance(event, DataChangeEvent):
                pending.append((event, now_micros()))
                arrived.set()
            elif isinstance(event, StatusChangeEvent):
                status = event.notification.Status
                if status is not None and not status.is_good():
                    raise _SessionLost(f"the server ended the subscription ({status.name})")
        raise _SessionLost("the subscription was closed")

    async def _commit(self, pending: list[tuple[DataChangeEvent, int]], emit: Emit) -> None:
        group = pending[:MAX_CHANGES_PER_COMMIT]
        del pending[: len(group)]
        await emit([r for r in (self._reading(event, at) for event, at in group) if r is not None])

    def _reading(self, event: DataChangeEvent, received_us: int) -> CapturedReading | None:
        item = event.data.monitored_item
        mapping = self._mappings[item.ClientHandle]
        value = item.Value
        status = value.StatusCode.value if value is not None and value.StatusCode is not None else 0
        change = DataChange(
            event.value,
            status,
            value.SourceTimestamp if value is not None else None,
            value.ServerTimestamp if value is not None else None,
        )
        outcome = datachange_reading(mapping, change, received_us, accept_uncertain=self._config.accept_uncertain)
        if isinstance(outcome, CapturedReading):
            return outcome
        self._stats.skipped += 1
        reason = f"{outcome} ({status_name(status)})" if status else outcome
        # One line per distinct problem: a failed sensor reporting every 100 ms must not flood the log.
        if reason not in self._reported and len(self._reported) < 1000:
            self._reported.add(reason)
            log.warning("%s: skipped %s", self.name, reason)
        return None


def _reference_key(node: OpcUaNode) -> str:
    return "node_id" if node.node_id is not None else "browse_path"

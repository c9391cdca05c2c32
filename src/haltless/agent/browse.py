"""`haltless agent browse opc.tcp://…`: list an OPC UA server's variables as a ready `[[sources]]` block.

The walk starts at the Objects folder and follows hierarchical references breadth first, leaving out the
standard's own nodes (namespace 0: the Server object) and properties (a unit or a range describes a value,
it is none). Variables that hold one number or boolean are listed; arrays, strings and structures are
counted in a comment instead, since the agent could not store their values.
"""

from __future__ import annotations

import asyncio
import sys
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path

from asyncua import ua
from asyncua.client.client import Client
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIdNames, ObjectIds

from haltless.agent.config import ConfigError, OpcUaConnection, certificate_files
from haltless.agent.sources import SourceError
from haltless.agent.sources.opcua import connect, disconnect
from haltless.agent.sources.opcua_nodes import BrowsedVariable, render_snippet

# Data types whose values are one number (or a boolean, stored as 0/1).
_NUMERIC_TYPES = frozenset(
    {
        ObjectIds.Boolean,
        ObjectIds.SByte,
        ObjectIds.Byte,
        ObjectIds.Int16,
        ObjectIds.UInt16,
        ObjectIds.Int32,
        ObjectIds.UInt32,
        ObjectIds.Int64,
        ObjectIds.UInt64,
        ObjectIds.Float,
        ObjectIds.Double,
        ObjectIds.Number,
        ObjectIds.Integer,
        ObjectIds.UInteger,
        ObjectIds.Duration,
    }
)
_SCALAR = -1  # ValueRank of a variable that holds one value, not an array
DEFAULT_MAX_NODES = 1000


def browse_command(fields: Mapping[str, object], *, max_nodes: int = DEFAULT_MAX_NODES) -> int:
    """Run the command with connection `fields` as a config file would hold them; returns the exit code."""
    try:
        connection = OpcUaConnection.model_validate(dict(fields))
        connection = connection.model_copy(update=certificate_files(connection, Path.cwd(), ""))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # pydantic's ValidationError
        problems = "; ".join(str(error["msg"]).removeprefix("Value error, ") for error in _errors(exc))
        print(f"error: {problems}", file=sys.stderr)
        return 2
    try:
        variables, skipped = asyncio.run(browse(connection, max_nodes))
    except SourceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # unreachable, timed out, failed: one line, as the agent logs it
        print(f"error: {connection.endpoint}: {exc or type(exc).__name__}", file=sys.stderr)
        return 1
    text = render_snippet(_source_lines(connection), variables)
    if skipped:
        text += f"# {skipped} more variable(s) hold arrays, text or structures, which are no readings\n"
    if len(variables) >= max_nodes:
        text += f"# stopped after {max_nodes} variables (--max-nodes)\n"
    sys.stdout.write(text)
    return 0


def _errors(exc: ValueError) -> list[dict[str, object]]:
    errors = getattr(exc, "errors", None)
    return list(errors()) if callable(errors) else [{"msg": str(exc)}]


def _source_lines(connection: OpcUaConnection) -> list[str]:
    lines = ['type = "opcua"', f'endpoint = "{connection.endpoint}"']
    if connection.security_policy != "None":
        lines += [
            f'security_policy = "{connection.security_policy}"',
            f'security_mode = "{connection.mode}"',
            f'certificate = "{connection.certificate}"',
            f'private_key = "{connection.private_key}"',
            f'server_certificate = "{connection.server_certificate}"',
        ]
    if connection.username is not None:
        lines += [f'username = "{connection.username}"', 'password_env = "OPCUA_PASSWORD"']
    return lines


async def browse(connection: OpcUaConnection, max_nodes: int) -> tuple[list[BrowsedVariable], int]:
    """The scalar numeric variables under Objects (at most `max_nodes`), and how many others were left out."""
    client = await connect(connection, "browse")
    try:
        found = await _walk(client, max_nodes)
        return await _describe(client, found)
    finally:
        await disconnect(client)


async def _walk(client: Client, max_nodes: int) -> list[tuple[ua.NodeId, tuple[str, ...]]]:
    queue: deque[tuple[ua.NodeId, tuple[str, ...]]] = deque([(client.nodes.objects.nodeid, ())])
    seen: set[str] = set()
    found: list[tuple[ua.NodeId, tuple[str, ...]]] = []
    while queue and len(found) < max_nodes:
        parent, path = queue.popleft()
        for reference in await client.get_node(parent).get_children_descriptions():
            node_id = ua.NodeId(reference.NodeId.Identifier, reference.NodeId.NamespaceIndex)
            key = node_id.to_string()
            if (
                node_id.NamespaceIndex == 0
                or key in seen
                or reference.ReferenceTypeId.Identifier == ObjectIds.HasProperty
            ):
                continue
            seen.add(key)
            child = (*path, reference.BrowseName.to_string())
            if reference.NodeClass == ua.NodeClass.Object:
                queue.append((node_id, child))
            elif reference.NodeClass == ua.NodeClass.Variable and len(found) < max_nodes:
                found.append((node_id, child))
    return found


async def _describe(
    client: Client, found: Sequence[tuple[ua.NodeId, tuple[str, ...]]]
) -> tuple[list[BrowsedVariable], int]:
    if not found:
        return [], 0
    nodes = [client.get_node(node_id) for node_id, _ in found]
    types = await client.read_attributes(nodes, AttributeIds.DataType)
    ranks = await client.read_attributes(nodes, AttributeIds.ValueRank)
    units = await _units(client, [node_id for node_id, _ in found])
    variables = []
    for (node_id, path), data_type, rank, unit in zip(found, types, ranks, units, strict=True):
        type_id = data_type.Value.Value if data_type.Value is not None else None
        if (
            not isinstance(type_id, ua.NodeId)
            or type_id.NamespaceIndex != 0
            or type_id.Identifier not in _NUMERIC_TYPES
        ):
            continue
        if rank.Value is not None and rank.Value.Value != _SCALAR:
            continue
        type_name = ObjectIdNames.get(int(type_id.Identifier), str(type_id.Identifier))
        variables.append(BrowsedVariable(path, node_id.to_string(), type_name, unit))
    return variables, len(found) - len(variables)


async def _units(client: Client, node_ids: Sequence[ua.NodeId]) -> list[str | None]:
    """The display name of each variable's EngineeringUnits property, where it has one (two requests)."""
    paths = []
    for node_id in node_ids:
        path = ua.BrowsePath()
        path.StartingNode = node_id
        path.RelativePath = ua.RelativePath.from_string(".0:EngineeringUnits")
        paths.append(path)
    results = await client.uaclient.translate_browsepaths_to_nodeids(paths)
    targets = [(i, r.Targets[0].TargetId) for i, r in enumerate(results) if r.StatusCode.is_good() and r.Targets]
    units: list[str | None] = [None] * len(node_ids)
    if targets:
        values = await client.read_values([client.get_node(target) for _, target in targets])
        for (i, _), value in zip(targets, values, strict=True):
            if isinstance(value, ua.EUInformation) and value.DisplayName.Text:
                units[i] = value.DisplayName.Text
    return units

"""Machine names as sources see them (a topic level, a CSV cell) resolved to the server's machine UUIDs."""

from __future__ import annotations

from collections.abc import Mapping

from haltless.core.readings import normalize_uuid


class MachineDirectory:
    """Aliases from the config's `[machines]` table first; a UUID stands for itself."""

    def __init__(self, aliases: Mapping[str, str]) -> None:
        self._aliases = dict(aliases)

    def resolve(self, name: str) -> str | None:
        """The machine UUID for `name`, or None when it is neither an alias nor a UUID."""
        return self._aliases.get(name) or normalize_uuid(name)

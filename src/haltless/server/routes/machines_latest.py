"""`GET /api/v1/machines?include=latest`: the machine list with each machine's newest value per metric."""

from __future__ import annotations

from pydantic import Field

from haltless.core.timefmt import format_micros
from haltless.errors import InvalidRequest
from haltless.server.schemas.machines import LatestReading, MachineOut, MachinePage
from haltless.store.readings import StoredReading

KNOWN_INCLUDES = frozenset({"latest"})
# The same rule as `parse_include`, for /openapi.json: comma-separated known values (blanks and spaces allowed).
_ONE = "|".join(sorted(KNOWN_INCLUDES))
INCLUDE_PATTERN = rf"^ *(?:(?:{_ONE}) *)?(?:, *(?:(?:{_ONE}) *)?)*$"


class MachineWithLatest(MachineOut):
    latest: list[LatestReading] | None = Field(
        default=None, description="With `include=latest`: the newest reading of each metric, by metric name."
    )


class FleetPage(MachinePage):
    items: list[MachineWithLatest]  # type: ignore[assignment]  # a subtype: extra fields on request only


def parse_include(include: str | None) -> frozenset[str]:
    """The comma-separated `include` values; InvalidRequest names any unknown one."""
    if include is None:
        return frozenset()
    wanted = frozenset(part.strip() for part in include.split(",") if part.strip())
    unknown = wanted - KNOWN_INCLUDES
    if unknown:
        raise InvalidRequest(f"unknown include {', '.join(sorted(unknown))!r}; known: {', '.join(KNOWN_INCLUDES)}")
    return wanted


def latest_reading(r: StoredReading) -> LatestReading:
    """A stored reading as `GET /machines/{id}/latest` and `include=latest` show it."""
    return LatestReading(
        metric_name=r.metric_name,
        value=r.value,
        unit=r.unit,
        timestamp=format_micros(r.ts),
        received_at=format_micros(r.received_at),
    )


def fleet_page(
    items: list[MachineOut],
    latest: dict[str, list[StoredReading]] | None,
    *,
    total: int,
    limit: int,
    offset: int,
) -> FleetPage:
    """The page; `latest` is set on each item only when it was asked for (unset fields are left out)."""
    out: list[MachineWithLatest] = []
    for item in items:
        fields = item.model_dump()
        if latest is not None:
            fields["latest"] = [latest_reading(r) for r in latest.get(item.id, [])]
        out.append(MachineWithLatest(**fields))
    return FleetPage(items=out, total=total, limit=limit, offset=offset)

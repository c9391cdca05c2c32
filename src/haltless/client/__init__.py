"""Python SDK of Haltless: the REST API (sync and async) and the live dashboard stream.

    from haltless.client import AsyncHaltlessClient, SensorUpdate

    async with AsyncHaltlessClient("http://127.0.0.1:8000", email=..., password=...) as client:
        async for event in client.stream(types={"sensor_update", "alert"}):
            ...

It imports nothing of the server: it is what plant engineers install on their own machines.
See docs/client.md for the guide and the reference; the exception tree is in `_exceptions`.
"""

from __future__ import annotations

from haltless.client._backoff import Backoff
from haltless.client._client import AsyncHaltlessClient, HaltlessClient
from haltless.client._endpoints import UNSET
from haltless.client._events import (
    Alert,
    AlertAcknowledged,
    AlertEscalated,
    AlertResolved,
    AlertShelved,
    AlertUnshelved,
    Connected,
    Event,
    GaveUp,
    Heartbeat,
    MachineStatus,
    Reconnecting,
    ResyncRequired,
    SensorUpdate,
    StreamStatus,
)
from haltless.client._exceptions import (
    APIError,
    AuthenticationError,
    BadRequest,
    Conflict,
    ConnectError,
    HaltlessClientError,
    HaltlessError,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    ServerError,
    SessionExpired,
    StreamClosed,
    StreamError,
    ValidationError,
)
from haltless.client._models import (
    AlertPage,
    AlertRecord,
    AlertRule,
    AnomalyPoint,
    AnomalySeries,
    ForecastPoint,
    ForecastSeries,
    HistoryBucket,
    HistoryPage,
    HistoryPoint,
    IngestResult,
    LatestReading,
    Machine,
    MachineLatest,
    MachinePage,
    Me,
    Reading,
    Rejection,
    TokenPair,
)
from haltless.client._stream import DashboardStream

__all__ = [
    "UNSET",
    "APIError",
    "Alert",
    "AlertAcknowledged",
    "AlertEscalated",
    "AlertPage",
    "AlertRecord",
    "AlertResolved",
    "AlertRule",
    "AlertShelved",
    "AlertUnshelved",
    "AnomalyPoint",
    "AnomalySeries",
    "AsyncHaltlessClient",
    "AuthenticationError",
    "Backoff",
    "BadRequest",
    "Conflict",
    "ConnectError",
    "Connected",
    "DashboardStream",
    "Event",
    "ForecastPoint",
    "ForecastSeries",
    "GaveUp",
    "HaltlessClient",
    "HaltlessClientError",
    "HaltlessError",
    "Heartbeat",
    "HistoryBucket",
    "HistoryPage",
    "HistoryPoint",
    "IngestResult",
    "LatestReading",
    "Machine",
    "MachineLatest",
    "MachinePage",
    "MachineStatus",
    "Me",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "RateLimited",
    "Reading",
    "Reconnecting",
    "Rejection",
    "ResyncRequired",
    "SensorUpdate",
    "ServerError",
    "SessionExpired",
    "StreamClosed",
    "StreamError",
    "StreamStatus",
    "TokenPair",
    "ValidationError",
]

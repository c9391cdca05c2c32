"""`HaltlessClient` (sync) and `AsyncHaltlessClient` (async): the REST API with transparent token refresh.

Both share every decision with `_base` and `_endpoints`; the code here only sends requests. A request that gets
401 with the current access token refreshes the session once (single-flight) and is retried once.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from haltless.client import _endpoints as api
from haltless.client._base import (
    TRANSPORT_ERRORS,
    USER_AGENT,
    Call,
    TokenStore,
    cannot_refresh,
    login_call,
    logout_call,
    no_credentials,
    normalize_base_url,
    plan_ingest,
    refresh_call,
    transport_error,
)
from haltless.client._endpoints import UNSET, Unset
from haltless.client._exceptions import AuthenticationError, SessionExpired
from haltless.client._models import (
    AlertPage,
    AlertRecord,
    AlertRule,
    AnomalySeries,
    ForecastSeries,
    HistoryBucket,
    HistoryPage,
    HistoryPoint,
    IngestResult,
    Machine,
    MachineLatest,
    MachinePage,
    Me,
    Reading,
    TokenPair,
)

if TYPE_CHECKING:
    from haltless.client._backoff import Backoff
    from haltless.client._stream import DashboardStream, StatusCallback

T = TypeVar("T")
DEFAULT_TIMEOUT = 30.0


def _raw_points(page: HistoryPage) -> list[HistoryPoint]:
    return [item for item in page.items if not isinstance(item, HistoryBucket)]


class _ClientState:
    """What both clients hold: where the server is, who we are, and the tokens."""

    def __init__(
        self,
        base_url: str,
        email: str | None,
        password: str | None,
        token: str | None,
        refresh_token: str | None,
    ) -> None:
        self.base_url = normalize_base_url(base_url)
        self.email = email
        self.password = password
        self.tokens = TokenStore(token, refresh_token)

    def login_request(self) -> Call[dict[str, Any]]:
        if self.email is None or self.password is None:
            raise no_credentials()
        return login_call(self.email, self.password)


class _ClientBase:
    """What the sync and async clients share beyond the I/O-free calls: their state and its read-only views."""

    _state: _ClientState

    @property
    def base_url(self) -> str:
        return self._state.base_url

    @property
    def access_token(self) -> str | None:
        return self._state.tokens.access_token

    @property
    def refresh_token(self) -> str | None:
        return self._state.tokens.refresh_token


class HaltlessClient(_ClientBase):
    """Synchronous client of the Haltless REST API. Use as a context manager, or call `close()`."""

    def __init__(
        self,
        base_url: str,
        *,
        email: str | None = None,
        password: str | None = None,
        token: str | None = None,
        refresh_token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._state = _ClientState(base_url, email, password, token, refresh_token)
        self._http = httpx.Client(
            base_url=self._state.base_url, timeout=timeout, transport=transport, headers={"User-Agent": USER_AGENT}
        )
        self._refresh_lock = threading.Lock()

    def __enter__(self) -> HaltlessClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool (the session stays valid on the server; see `logout`)."""
        self._http.close()

    # --- sending -------------------------------------------------------------------------------------------

    def _raw(self, call: Call[T], token: str | None) -> T:
        try:
            response = self._http.request(call.method, call.path, **call.request_kwargs(token))
        except TRANSPORT_ERRORS as exc:
            raise transport_error(exc, self._state.base_url) from exc
        return call.result(response)

    def _send(self, call: Call[T]) -> T:
        if not call.auth:
            return self._raw(call, None)
        token = self._ensure_token()
        try:
            return self._raw(call, token)
        except AuthenticationError as exc:
            self._refresh_after(token, exc.detail)
            return self._raw(call, self._state.tokens.access_token)

    def _ensure_token(self) -> str:
        token = self._state.tokens.access_token
        if token is None:
            self.login()
            token = self._state.tokens.access_token
        assert token is not None
        return token

    def _refresh_after(self, failed_token: str | None, detail: str) -> None:
        with self._refresh_lock:
            if not self._state.tokens.stale(failed_token):
                return  # another thread already refreshed it
            refresh_token = self._state.tokens.refresh_token
            if refresh_token is None:
                raise cannot_refresh(detail)
            try:
                pair = self._raw(refresh_call(refresh_token), None)
            except AuthenticationError as exc:
                raise SessionExpired(exc.status, exc.detail, method=exc.method, url=exc.url) from None
            self._state.tokens.update(pair)

    # --- auth ----------------------------------------------------------------------------------------------

    def login(self, email: str | None = None, password: str | None = None) -> TokenPair:
        """Log in (with the given or the constructor's credentials) and keep the tokens."""
        if email is not None:
            self._state.email, self._state.password = email, password
        pair = self._raw(self._state.login_request(), None)
        self._state.tokens.update(pair)
        return TokenPair.from_json(pair)

    def refresh(self) -> TokenPair:
        """Rotate the tokens now (normally not needed: a 401 refreshes them transparently)."""
        self._refresh_after(self._state.tokens.access_token, "refresh requested")
        return self._current_pair()

    def logout(self) -> None:
        """Revoke the session on the server and forget the tokens."""
        refresh_token = self._state.tokens.refresh_token
        if refresh_token is not None:
            self._raw(logout_call(refresh_token), None)
        self._state.tokens = TokenStore(None, None)

    def _current_pair(self) -> TokenPair:
        tokens = self._state.tokens
        return TokenPair(tokens.access_token or "", tokens.refresh_token or "", 0)

    def me(self) -> Me:
        """The calling user."""
        return self._send(api.me())

    # --- machines ------------------------------------------------------------------------------------------

    def list_machines(self, *, limit: int = 100, offset: int = 0) -> MachinePage:
        """One page of the tenant's machines, ordered by name."""
        return self._send(api.list_machines(limit, offset))

    def get_machine(self, machine_id: str) -> Machine:
        """One machine; NotFound if it is not in your tenant."""
        return self._send(api.get_machine(machine_id))

    def create_machine(self, name: str, *, location: str | None = None, tags: Iterable[str] = ()) -> Machine:
        """Register a machine (admin); it starts `offline`."""
        return self._send(api.create_machine(name, location, tags))

    def update_machine(
        self,
        machine_id: str,
        *,
        name: str | Unset = UNSET,
        location: str | Unset | None = UNSET,
        tags: Iterable[str] | Unset = UNSET,
    ) -> Machine:
        """Change the given fields (admin); `location=None` clears it, fields left out stay as they are."""
        return self._send(api.update_machine(machine_id, name, location, tags))

    def delete_machine(self, machine_id: str) -> None:
        """Delete a machine and its readings (admin)."""
        self._send(api.delete_machine(machine_id))

    def latest(self, machine_id: str) -> MachineLatest:
        """The newest reading of each metric of a machine."""
        return self._send(api.latest(machine_id))

    # --- ingest --------------------------------------------------------------------------------------------

    def ingest(self, readings: Iterable[Reading | Mapping[str, Any]]) -> IngestResult:
        """Send readings in as many requests as the server's limits need; the result sums them all.

        Rejection indexes refer to positions in `readings`. If a request fails, earlier ones are already stored:
        give readings a `reading_id` and retrying the whole list is safe (repeats count as duplicates).
        """
        total = IngestResult()
        for batch in plan_ingest(readings):
            total += self._send(api.ingest_batch(batch))
        return total

    # --- history -------------------------------------------------------------------------------------------

    def history(
        self,
        machine_id: str,
        metric_names: str | Iterable[str],
        *,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        interval: str | None = None,
        max_points: int | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> HistoryPage:
        """One page of stored readings (default: the last hour), or buckets with `interval` / `max_points`."""
        return self._send(api.history(machine_id, metric_names, start, end, interval, max_points, limit, cursor))

    def iter_history(
        self,
        machine_id: str,
        metric_names: str | Iterable[str],
        *,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        limit: int | None = None,
    ) -> Iterator[HistoryPoint]:
        """Every raw point in the range, following the server's cursors page by page."""
        cursor: str | None = None
        while True:
            page = self.history(machine_id, metric_names, start=start, end=end, limit=limit, cursor=cursor)
            yield from _raw_points(page)
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def derived_anomaly(
        self,
        machine_id: str,
        metric_name: str,
        *,
        rule_id: str | None = None,
        sensitivity: str | None = None,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        limit: int | None = None,
    ) -> AnomalySeries:
        """The anomaly score, expected value and band of each reading in [start, end) (default: the last hour),
        as the anomaly rule `rule_id` (or one at `sensitivity`, default medium) judges them."""
        call = api.derived_anomaly(machine_id, metric_name, start, end, rule_id, sensitivity, limit)
        return self._send(call)

    def derived_forecast(
        self,
        machine_id: str,
        metric_name: str,
        *,
        rule_id: str | None = None,
        condition: str | None = None,
        threshold: float | None = None,
        horizon_seconds: float | None = None,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        limit: int | None = None,
    ) -> ForecastSeries:
        """The forecasts of the forecast rule `rule_id` (or of `condition`, `threshold` and `horizon_seconds`)
        as of the readings in [start, end); `.forecast` is the newest."""
        call = api.derived_forecast(
            machine_id, metric_name, start, end, rule_id, condition, threshold, horizon_seconds, limit
        )
        return self._send(call)

    # --- alert rules ---------------------------------------------------------------------------------------

    def list_alert_rules(self) -> list[AlertRule]:
        """Every alert rule of the tenant, oldest first."""
        return self._send(api.list_alert_rules())

    def get_alert_rule(self, rule_id: str) -> AlertRule:
        """One alert rule; NotFound if it is not in your tenant."""
        return self._send(api.get_alert_rule(rule_id))

    def create_alert_rule(
        self,
        name: str,
        metric_name: str,
        condition: str,
        threshold: float,
        *,
        machine_id: str | None = None,
        severity: str = "warning",
        for_seconds: float = 0.0,
        hysteresis: float = 0.0,
        enabled: bool = True,
        message: str | None = None,
    ) -> AlertRule:
        """Create a threshold rule (admin): `value <condition> threshold` on `metric_name`; `machine_id=None`
        watches all."""
        fields = {"condition": condition, "threshold": threshold}
        call = api.create_alert_rule(
            name, metric_name, "threshold", fields, machine_id, severity, for_seconds, hysteresis, enabled, message
        )
        return self._send(call)

    def create_anomaly_rule(
        self,
        name: str,
        metric_name: str,
        *,
        sensitivity: str = "medium",
        machine_id: str | None = None,
        severity: str = "warning",
        for_seconds: float = 0.0,
        hysteresis: float = 0.0,
        enabled: bool = True,
        message: str | None = None,
    ) -> AlertRule:
        """Create an anomaly rule (admin): unusual values of `metric_name` at `sensitivity` low, medium or high;
        `hysteresis` is a margin on the anomaly score (below 0.25)."""
        fields = {"sensitivity": sensitivity}
        call = api.create_alert_rule(
            name, metric_name, "anomaly", fields, machine_id, severity, for_seconds, hysteresis, enabled, message
        )
        return self._send(call)

    def create_forecast_rule(
        self,
        name: str,
        metric_name: str,
        condition: str,
        threshold: float,
        horizon_seconds: float,
        *,
        window_readings: int | None = None,
        machine_id: str | None = None,
        severity: str = "warning",
        for_seconds: float = 0.0,
        hysteresis: float = 0.0,
        enabled: bool = True,
        message: str | None = None,
    ) -> AlertRule:
        """Create a forecast rule (admin): alert when the trend of `metric_name` (fitted over `window_readings`
        recent readings) is predicted to pass `condition threshold` within `horizon_seconds`."""
        fields = {
            "condition": condition,
            "threshold": threshold,
            "horizon_seconds": horizon_seconds,
            "window_readings": window_readings,
        }
        call = api.create_alert_rule(
            name, metric_name, "forecast", fields, machine_id, severity, for_seconds, hysteresis, enabled, message
        )
        return self._send(call)

    def update_alert_rule(
        self,
        rule_id: str,
        *,
        name: str | Unset = UNSET,
        metric_name: str | Unset = UNSET,
        machine_id: str | Unset | None = UNSET,
        condition: str | Unset = UNSET,
        threshold: float | Unset = UNSET,
        severity: str | Unset = UNSET,
        for_seconds: float | Unset = UNSET,
        hysteresis: float | Unset = UNSET,
        enabled: bool | Unset = UNSET,
        message: str | Unset | None = UNSET,
        sensitivity: str | Unset = UNSET,
        horizon_seconds: float | Unset = UNSET,
        window_readings: int | Unset | None = UNSET,
    ) -> AlertRule:
        """Change the given fields (admin); `machine_id=None` widens to every machine, `message=None` clears it,
        `window_readings=None` goes back to the default window. The kind cannot change; a field of another kind
        is refused (ValidationError)."""
        changes = dict(
            name=name,
            metric_name=metric_name,
            machine_id=machine_id,
            condition=condition,
            threshold=threshold,
            severity=severity,
            for_seconds=for_seconds,
            hysteresis=hysteresis,
            enabled=enabled,
            message=message,
            sensitivity=sensitivity,
            horizon_seconds=horizon_seconds,
            window_readings=window_readings,
        )
        return self._send(api.update_alert_rule(rule_id, changes))

    def delete_alert_rule(self, rule_id: str) -> None:
        """Delete a rule (admin); its open alerts are resolved (`rule_deleted`) and stay in the history."""
        self._send(api.delete_alert_rule(rule_id))

    # --- alerts --------------------------------------------------------------------------------------------

    def list_alerts(
        self,
        *,
        state: str | None = None,
        machine_id: str | None = None,
        severity: str | None = None,
        rule_id: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> AlertPage:
        """One page of alerts, newest first; `state` is active, acknowledged, resolved or open."""
        return self._send(api.list_alerts(state, machine_id, severity, rule_id, limit, cursor))

    def iter_alerts(
        self,
        *,
        state: str | None = None,
        machine_id: str | None = None,
        severity: str | None = None,
        rule_id: str | None = None,
        limit: int | None = None,
    ) -> Iterator[AlertRecord]:
        """Every matching alert, newest first, following `next_cursor` page by page (`limit` is the page size)."""
        cursor: str | None = None
        while True:
            page = self.list_alerts(
                state=state, machine_id=machine_id, severity=severity, rule_id=rule_id, limit=limit, cursor=cursor
            )
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def get_alert(self, alert_id: str) -> AlertRecord:
        """One alert; NotFound if it is not in your tenant."""
        return self._send(api.get_alert(alert_id))

    def acknowledge_alert(self, alert_id: str) -> AlertRecord:
        """Mark an open alert as taken care of (operator); again is a no-op; Conflict when it is resolved."""
        return self._send(api.acknowledge_alert(alert_id))

    def resolve_alert(self, alert_id: str) -> AlertRecord:
        """Close an alert by hand (operator, `resolution="manual"`); Conflict when it is already resolved."""
        return self._send(api.resolve_alert(alert_id))


class AsyncHaltlessClient(_ClientBase):
    """Asynchronous client of the Haltless REST API and its live stream. Use `async with`, or call `aclose()`."""

    def __init__(
        self,
        base_url: str,
        *,
        email: str | None = None,
        password: str | None = None,
        token: str | None = None,
        refresh_token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._state = _ClientState(base_url, email, password, token, refresh_token)
        self._http = httpx.AsyncClient(
            base_url=self._state.base_url, timeout=timeout, transport=transport, headers={"User-Agent": USER_AGENT}
        )
        self._refresh_lock = asyncio.Lock()

    async def __aenter__(self) -> AsyncHaltlessClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool (the session stays valid on the server; see `logout`)."""
        await self._http.aclose()

    # --- sending -------------------------------------------------------------------------------------------

    async def _raw(self, call: Call[T], token: str | None) -> T:
        try:
            response = await self._http.request(call.method, call.path, **call.request_kwargs(token))
        except TRANSPORT_ERRORS as exc:
            raise transport_error(exc, self._state.base_url) from exc
        return call.result(response)

    async def _send(self, call: Call[T]) -> T:
        if not call.auth:
            return await self._raw(call, None)
        token = await self.ensure_token()
        try:
            return await self._raw(call, token)
        except AuthenticationError as exc:
            await self.refresh_after(token, exc.detail)
            return await self._raw(call, self._state.tokens.access_token)

    async def ensure_token(self) -> str:
        """The current access token, logging in first if there is none yet."""
        token = self._state.tokens.access_token
        if token is None:
            await self.login()
            token = self._state.tokens.access_token
        assert token is not None
        return token

    async def refresh_after(self, failed_token: str | None, detail: str = "access token refused") -> str:
        """Refresh the session because `failed_token` was refused; single-flight across concurrent callers.

        Returns the new access token. Raises SessionExpired when the refresh token is revoked or expired.
        """
        async with self._refresh_lock:
            if self._state.tokens.stale(failed_token):
                refresh_token = self._state.tokens.refresh_token
                if refresh_token is None:
                    raise cannot_refresh(detail)
                try:
                    pair = await self._raw(refresh_call(refresh_token), None)
                except AuthenticationError as exc:
                    raise SessionExpired(exc.status, exc.detail, method=exc.method, url=exc.url) from None
                self._state.tokens.update(pair)
            token = self._state.tokens.access_token
            assert token is not None
            return token

    # --- auth ----------------------------------------------------------------------------------------------

    async def login(self, email: str | None = None, password: str | None = None) -> TokenPair:
        """Log in (with the given or the constructor's credentials) and keep the tokens."""
        if email is not None:
            self._state.email, self._state.password = email, password
        pair = await self._raw(self._state.login_request(), None)
        self._state.tokens.update(pair)
        return TokenPair.from_json(pair)

    async def refresh(self) -> TokenPair:
        """Rotate the tokens now (normally not needed: a 401 refreshes them transparently)."""
        await self.refresh_after(self._state.tokens.access_token, "refresh requested")
        tokens = self._state.tokens
        return TokenPair(tokens.access_token or "", tokens.refresh_token or "", 0)

    async def logout(self) -> None:
        """Revoke the session on the server and forget the tokens."""
        refresh_token = self._state.tokens.refresh_token
        if refresh_token is not None:
            await self._raw(logout_call(refresh_token), None)
        self._state.tokens = TokenStore(None, None)

    async def me(self) -> Me:
        """The calling user."""
        return await self._send(api.me())

    # --- machines ------------------------------------------------------------------------------------------

    async def list_machines(self, *, limit: int = 100, offset: int = 0) -> MachinePage:
        """One page of the tenant's machines, ordered by name."""
        return await self._send(api.list_machines(limit, offset))

    async def get_machine(self, machine_id: str) -> Machine:
        """One machine; NotFound if it is not in your tenant."""
        return await self._send(api.get_machine(machine_id))

    async def create_machine(self, name: str, *, location: str | None = None, tags: Iterable[str] = ()) -> Machine:
        """Register a machine (admin); it starts `offline`."""
        return await self._send(api.create_machine(name, location, tags))

    async def update_machine(
        self,
        machine_id: str,
        *,
        name: str | Unset = UNSET,
        location: str | Unset | None = UNSET,
        tags: Iterable[str] | Unset = UNSET,
    ) -> Machine:
        """Change the given fields (admin); `location=None` clears it, fields left out stay as they are."""
        return await self._send(api.update_machine(machine_id, name, location, tags))

    async def delete_machine(self, machine_id: str) -> None:
        """Delete a machine and its readings (admin)."""
        await self._send(api.delete_machine(machine_id))

    async def latest(self, machine_id: str) -> MachineLatest:
        """The newest reading of each metric of a machine."""
        return await self._send(api.latest(machine_id))

    # --- ingest --------------------------------------------------------------------------------------------

    async def ingest(self, readings: Iterable[Reading | Mapping[str, Any]]) -> IngestResult:
        """Send readings in as many requests as the server's limits need; the result sums them all.

        Rejection indexes refer to positions in `readings`. If a request fails, earlier ones are already stored:
        give readings a `reading_id` and retrying the whole list is safe (repeats count as duplicates).
        """
        total = IngestResult()
        for batch in plan_ingest(readings):
            total += await self._send(api.ingest_batch(batch))
        return total

    # --- history -------------------------------------------------------------------------------------------

    async def history(
        self,
        machine_id: str,
        metric_names: str | Iterable[str],
        *,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        interval: str | None = None,
        max_points: int | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> HistoryPage:
        """One page of stored readings (default: the last hour), or buckets with `interval` / `max_points`."""
        return await self._send(api.history(machine_id, metric_names, start, end, interval, max_points, limit, cursor))

    async def iter_history(
        self,
        machine_id: str,
        metric_names: str | Iterable[str],
        *,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[HistoryPoint]:
        """Every raw point in the range, following the server's cursors page by page."""
        cursor: str | None = None
        while True:
            page = await self.history(machine_id, metric_names, start=start, end=end, limit=limit, cursor=cursor)
            for point in _raw_points(page):
                yield point
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def derived_anomaly(
        self,
        machine_id: str,
        metric_name: str,
        *,
        rule_id: str | None = None,
        sensitivity: str | None = None,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        limit: int | None = None,
    ) -> AnomalySeries:
        """The anomaly score, expected value and band of each reading in [start, end) (default: the last hour),
        as the anomaly rule `rule_id` (or one at `sensitivity`, default medium) judges them."""
        call = api.derived_anomaly(machine_id, metric_name, start, end, rule_id, sensitivity, limit)
        return await self._send(call)

    async def derived_forecast(
        self,
        machine_id: str,
        metric_name: str,
        *,
        rule_id: str | None = None,
        condition: str | None = None,
        threshold: float | None = None,
        horizon_seconds: float | None = None,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        limit: int | None = None,
    ) -> ForecastSeries:
        """The forecasts of the forecast rule `rule_id` (or of `condition`, `threshold` and `horizon_seconds`)
        as of the readings in [start, end); `.forecast` is the newest."""
        call = api.derived_forecast(
            machine_id, metric_name, start, end, rule_id, condition, threshold, horizon_seconds, limit
        )
        return await self._send(call)

    # --- alert rules ---------------------------------------------------------------------------------------

    async def list_alert_rules(self) -> list[AlertRule]:
        """Every alert rule of the tenant, oldest first."""
        return await self._send(api.list_alert_rules())

    async def get_alert_rule(self, rule_id: str) -> AlertRule:
        """One alert rule; NotFound if it is not in your tenant."""
        return await self._send(api.get_alert_rule(rule_id))

    async def create_alert_rule(
        self,
        name: str,
        metric_name: str,
        condition: str,
        threshold: float,
        *,
        machine_id: str | None = None,
        severity: str = "warning",
        for_seconds: float = 0.0,
        hysteresis: float = 0.0,
        enabled: bool = True,
        message: str | None = None,
    ) -> AlertRule:
        """Create a threshold rule (admin): `value <condition> threshold` on `metric_name`; `machine_id=None`
        watches all."""
        fields = {"condition": condition, "threshold": threshold}
        call = api.create_alert_rule(
            name, metric_name, "threshold", fields, machine_id, severity, for_seconds, hysteresis, enabled, message
        )
        return await self._send(call)

    async def create_anomaly_rule(
        self,
        name: str,
        metric_name: str,
        *,
        sensitivity: str = "medium",
        machine_id: str | None = None,
        severity: str = "warning",
        for_seconds: float = 0.0,
        hysteresis: float = 0.0,
        enabled: bool = True,
        message: str | None = None,
    ) -> AlertRule:
        """Create an anomaly rule (admin): unusual values of `metric_name` at `sensitivity` low, medium or high;
        `hysteresis` is a margin on the anomaly score (below 0.25)."""
        fields = {"sensitivity": sensitivity}
        call = api.create_alert_rule(
            name, metric_name, "anomaly", fields, machine_id, severity, for_seconds, hysteresis, enabled, message
        )
        return await self._send(call)

    async def create_forecast_rule(
        self,
        name: str,
        metric_name: str,
        condition: str,
        threshold: float,
        horizon_seconds: float,
        *,
        window_readings: int | None = None,
        machine_id: str | None = None,
        severity: str = "warning",
        for_seconds: float = 0.0,
        hysteresis: float = 0.0,
        enabled: bool = True,
        message: str | None = None,
    ) -> AlertRule:
        """Create a forecast rule (admin): alert when the trend of `metric_name` (fitted over `window_readings`
        recent readings) is predicted to pass `condition threshold` within `horizon_seconds`."""
        fields = {
            "condition": condition,
            "threshold": threshold,
            "horizon_seconds": horizon_seconds,
            "window_readings": window_readings,
        }
        call = api.create_alert_rule(
            name, metric_name, "forecast", fields, machine_id, severity, for_seconds, hysteresis, enabled, message
        )
        return await self._send(call)

    async def update_alert_rule(
        self,
        rule_id: str,
        *,
        name: str | Unset = UNSET,
        metric_name: str | Unset = UNSET,
        machine_id: str | Unset | None = UNSET,
        condition: str | Unset = UNSET,
        threshold: float | Unset = UNSET,
        severity: str | Unset = UNSET,
        for_seconds: float | Unset = UNSET,
        hysteresis: float | Unset = UNSET,
        enabled: bool | Unset = UNSET,
        message: str | Unset | None = UNSET,
        sensitivity: str | Unset = UNSET,
        horizon_seconds: float | Unset = UNSET,
        window_readings: int | Unset | None = UNSET,
    ) -> AlertRule:
        """Change the given fields (admin); `machine_id=None` widens to every machine, `message=None` clears it,
        `window_readings=None` goes back to the default window. The kind cannot change; a field of another kind
        is refused (ValidationError)."""
        changes = dict(
            name=name,
            metric_name=metric_name,
            machine_id=machine_id,
            condition=condition,
            threshold=threshold,
            severity=severity,
            for_seconds=for_seconds,
            hysteresis=hysteresis,
            enabled=enabled,
            message=message,
            sensitivity=sensitivity,
            horizon_seconds=horizon_seconds,
            window_readings=window_readings,
        )
        return await self._send(api.update_alert_rule(rule_id, changes))

    async def delete_alert_rule(self, rule_id: str) -> None:
        """Delete a rule (admin); its open alerts are resolved (`rule_deleted`) and stay in the history."""
        await self._send(api.delete_alert_rule(rule_id))

    # --- alerts --------------------------------------------------------------------------------------------

    async def list_alerts(
        self,
        *,
        state: str | None = None,
        machine_id: str | None = None,
        severity: str | None = None,
        rule_id: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> AlertPage:
        """One page of alerts, newest first; `state` is active, acknowledged, resolved or open."""
        return await self._send(api.list_alerts(state, machine_id, severity, rule_id, limit, cursor))

    async def iter_alerts(
        self,
        *,
        state: str | None = None,
        machine_id: str | None = None,
        severity: str | None = None,
        rule_id: str | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[AlertRecord]:
        """Every matching alert, newest first, following `next_cursor` page by page (`limit` is the page size)."""
        cursor: str | None = None
        while True:
            page = await self.list_alerts(
                state=state, machine_id=machine_id, severity=severity, rule_id=rule_id, limit=limit, cursor=cursor
            )
            for alert in page.items:
                yield alert
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def get_alert(self, alert_id: str) -> AlertRecord:
        """One alert; NotFound if it is not in your tenant."""
        return await self._send(api.get_alert(alert_id))

    async def acknowledge_alert(self, alert_id: str) -> AlertRecord:
        """Mark an open alert as taken care of (operator); again is a no-op; Conflict when it is resolved."""
        return await self._send(api.acknowledge_alert(alert_id))

    async def resolve_alert(self, alert_id: str) -> AlertRecord:
        """Close an alert by hand (operator, `resolution="manual"`); Conflict when it is already resolved."""
        return await self._send(api.resolve_alert(alert_id))

    # --- live stream ---------------------------------------------------------------------------------------

    def stream(
        self,
        *,
        machine_ids: Iterable[str] | None = None,
        types: Iterable[str] | None = None,
        heartbeats: bool = False,
        status_events: bool = False,
        on_status: StatusCallback | None = None,
        heartbeat_interval: float = 15.0,
        backoff: Backoff | None = None,
        fail_fast: bool = True,
        max_attempts: int | None = None,
        ws_url: str | None = None,
        resume: bool = True,
    ) -> DashboardStream:
        """The tenant's live events; see DashboardStream for reconnection and filtering."""
        from haltless.client._stream import DashboardStream

        return DashboardStream(
            self,
            machine_ids=machine_ids,
            types=types,
            heartbeats=heartbeats,
            status_events=status_events,
            on_status=on_status,
            heartbeat_interval=heartbeat_interval,
            backoff=backoff,
            fail_fast=fail_fast,
            max_attempts=max_attempts,
            ws_url=ws_url,
            resume=resume,
        )

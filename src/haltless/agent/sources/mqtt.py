"""MQTT subscriptions as a source: topic templates map messages to machine, metric and unit.

Messages are acknowledged to the broker only after their readings are committed to the buffer
(manual PUBACK), so with a persistent session (`client_id` set) a crash loses nothing the broker sent;
a message delivered again after such a crash is stored once when its payload carries its time.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass

import aiomqtt

from haltless.agent.backoff import Backoff
from haltless.agent.captured import CapturedReading, new_reading_id, now_micros
from haltless.agent.config import MqttSourceConfig, MqttSubscription
from haltless.agent.sources import Emit
from haltless.agent.sources.machines import MachineDirectory
from haltless.agent.sources.payloads import PayloadError, parse_payload
from haltless.agent.sources.topics import TopicTemplate
from haltless.agent.stats import AgentStats

log = logging.getLogger("haltless.agent")
# Bounds how many received-but-unbuffered messages one commit takes, and so the memory of a burst.
MAX_MESSAGES_PER_COMMIT = 1000


def message_reading_id(topic: str, payload: bytes) -> str:
    """The id of a message that carries its own measurement time: the same for every delivery of it.

    A broker delivers a QoS 1 message again when the agent stopped between buffering it and acknowledging
    it, and two agents may listen to the same topic; the server then counts the repeats as duplicates.
    A payload without a time cannot be told from a later, equal reading, so it gets a fresh id instead.
    """
    digest = hashlib.sha256(topic.encode() + b"\x00" + payload).hexdigest()
    return f"mqtt:{digest[:40]}"


@dataclass(frozen=True, slots=True)
class TopicMapping:
    """One subscription, parsed."""

    template: TopicTemplate
    subscription: MqttSubscription

    def reading(
        self, topic: str, payload: bytes, received_us: int, machines: MachineDirectory
    ) -> CapturedReading | str | None:
        """The reading of a message, a reason why it has none, or None when this mapping does not match."""
        captured = self.template.match(topic)
        if captured is None:
            return None
        try:
            parsed = parse_payload(payload, self.subscription.value_field)
        except PayloadError as exc:
            return f"{topic}: {exc}"
        machine_name = self.subscription.machine.format_map(captured)
        machine_id = machines.resolve(machine_name)
        if machine_id is None:
            return f"{topic}: machine {machine_name!r} is neither a UUID nor listed under [machines]"
        return CapturedReading(
            reading_id=parsed.reading_id
            or (message_reading_id(topic, payload) if parsed.ts_us is not None else new_reading_id()),
            machine_id=machine_id,
            metric_name=self.subscription.metric.format_map(captured),
            value=parsed.value,
            unit=parsed.unit if parsed.unit is not None else self.subscription.unit.format_map(captured),
            ts_us=parsed.ts_us if parsed.ts_us is not None else received_us,
        )


class MqttSource:
    """Subscribes, buffers, acknowledges; reconnects with backoff when the broker goes away."""

    finite = False

    def __init__(self, config: MqttSourceConfig, machines: MachineDirectory, stats: AgentStats) -> None:
        self.name = config.name
        self._config = config
        self._machines = machines
        self._stats = stats
        self._mappings = [TopicMapping(TopicTemplate.parse(s.topic), s) for s in config.subscriptions]
        self._reported: set[str] = set()
        self.subscribed = asyncio.Event()  # set once the broker confirmed the subscriptions (tests await it)

    async def run(self, emit: Emit) -> None:
        """Stay subscribed until cancelled."""
        backoff = Backoff(0.5, 30.0)
        while True:
            try:
                await self._session(emit, backoff)
            except aiomqtt.MqttError as exc:
                self.subscribed.clear()
                self._stats.last_error = f"{self.name}: {exc}"
                delay = backoff.next_delay()
                log.warning("%s: MQTT broker %s:%d: %s; reconnecting in %.1fs", self.name, *self._where(), exc, delay)
                await asyncio.sleep(delay)

    def _where(self) -> tuple[str, int]:
        return self._config.host, self._config.port

    async def _session(self, emit: Emit, backoff: Backoff) -> None:
        config = self._config
        clean_session = config.clean_session if config.clean_session is not None else config.client_id is None
        async with aiomqtt.Client(
            config.host,
            config.port,
            username=config.username,
            password=config.password,
            identifier=config.client_id,
            clean_session=clean_session,
            keepalive=config.keepalive,
        ) as client:
            mappings = self._mappings
            # aiomqtt has no public switch for this; paho acknowledges on receipt unless told otherwise.
            client._client.manual_ack_set(True)
            topics: list[tuple[str, int]] = [(m.template.subscription_filter, m.subscription.qos) for m in mappings]
            await client.subscribe(topics)
            backoff.reset()
            self.subscribed.set()
            log.info("%s: subscribed at %s:%d", self.name, *self._where())
            pending: list[tuple[aiomqtt.Message, int]] = []
            arrived = asyncio.Event()
            committer = asyncio.create_task(self._commit_loop(client, pending, arrived, emit))
            try:
                async for message in client.messages:
                    pending.append((message, now_micros()))
                    arrived.set()
                    if committer.done():
                        committer.result()  # surfaces the buffer's error instead of piling up messages
            finally:
                committer.cancel()

    async def _commit_loop(
        self, client: aiomqtt.Client, pending: list[tuple[aiomqtt.Message, int]], arrived: asyncio.Event, emit: Emit
    ) -> None:
        while True:
            await arrived.wait()
            arrived.clear()
            while pending:
                group = pending[:MAX_MESSAGES_PER_COMMIT]
                del pending[: len(group)]
                readings = [r for r in (self._reading(m, at) for m, at in group) if r is not None]
                await emit(readings)
                for message, _ in group:
                    if message.qos > 0:
                        client._client.ack(message.mid, message.qos)

    def _reading(self, message: aiomqtt.Message, received_us: int) -> CapturedReading | None:
        topic = message.topic.value
        payload = message.payload if isinstance(message.payload, bytes | bytearray) else str(message.payload).encode()
        for mapping in self._mappings:
            outcome = mapping.reading(topic, bytes(payload), received_us, self._machines)
            if isinstance(outcome, CapturedReading):
                return outcome
            if outcome is not None:
                self._skip(outcome)
                return None
        return None  # a retained or overlapping subscription's topic no mapping claims

    def _skip(self, reason: str) -> None:
        self._stats.skipped += 1
        # One line per distinct problem: a misconfigured sensor publishing 10/s must not flood the log.
        if reason not in self._reported and len(self._reported) < 1000:
            self._reported.add(reason)
            log.warning("%s: skipped %s", self.name, reason)

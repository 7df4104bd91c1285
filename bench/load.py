"""The Kafka side of a run: its topics, the directory, the offered load (closed-loop flood
and open-loop fixed rate), and the LIMIT, a bare aiokafka consumer reading the same topic.
The closed loop also floods the peer (bench/peer_flood.py), through its own publisher.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from bench.population import Directory, RequestFactory
from notifier.config import KafkaSettings

# Every topic notifier has (its NOTIFIER_KAFKA_<KIND>_TOPIC settings), so a scenario's
# prefix covers a topic added later too.
_TOPICS = {
    name.removesuffix("_topic").upper(): str(setting.default)
    for name, setting in KafkaSettings.model_fields.items()
    if name.endswith("_topic")
}


@dataclass(frozen=True, slots=True)
class Topics:
    """A scenario's own topics (notifier creates them at start), named with its prefix."""

    prefix: str

    def name(self, kind: str) -> str:
        return f"{self.prefix}{_TOPICS[kind]}"

    def env(self) -> dict[str, str]:
        return {f"NOTIFIER_KAFKA_{kind}_TOPIC": self.name(kind) for kind in _TOPICS}


async def delete_topics(bootstrap: str, prefix: str) -> list[str]:
    """Delete every topic named with ``prefix`` (consumer groups expire on their own:
    aiokafka cannot delete them)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        doomed = [topic for topic in await admin.list_topics() if topic.startswith(prefix)]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()
    return doomed


@dataclass
class Load:
    """Publishes the run's requests and remembers what each should produce."""

    producer: AIOKafkaProducer
    topics: Topics
    factory: RequestFactory
    expected: dict[int, int] = field(default_factory=dict)
    """Texts and emails per request number."""
    inbox: dict[int, int] = field(default_factory=dict)
    created: dict[int, float] = field(default_factory=dict)
    """created_at (Unix seconds) per request number."""
    published_sends: int = 0
    _pending: list[asyncio.Future[object]] = field(default_factory=list)

    async def publish_directory(self, directory: Directory) -> int:
        for district in directory.districts:
            await self._send(self.topics.name("DISTRICTS"), district.id, district.wire())
        for person in directory.people:
            await self._send(self.topics.name("RECIPIENTS"), person.id, person.wire())
        await self.flush()
        return len(directory.districts) + len(directory.people)

    async def publish_request(self) -> None:
        request = self.factory.make()
        self.expected[request.number] = request.sends
        self.inbox[request.number] = request.inbox
        self.created[request.number] = request.created_at
        self.published_sends += request.sends
        conversation = str(request.payload["conversation_id"])
        await self._send(self.topics.name("SEND_REQUESTS"), conversation, request.payload)

    async def flush(self) -> None:
        pending, self._pending = self._pending, []
        await asyncio.gather(*pending)

    async def _send(self, topic: str, key: str, value: dict[str, object]) -> None:
        self._pending.append(await self.producer.send(topic, orjson.dumps(value), key=key.encode()))
        if len(self._pending) >= 1000:
            await self.flush()


Tick = Callable[[], Awaitable[None]]


class Publisher(Protocol):
    """What a closed loop offers its load through: notifier's ``Load``, or the peer's."""

    @property
    def published_sends(self) -> int:
        """Texts and emails of the requests published so far."""
        ...

    async def publish_request(self) -> None: ...

    async def flush(self) -> None: ...


async def closed_loop(
    load: Publisher,
    delivered: Callable[[], Awaitable[int]],
    *,
    seconds: float,
    backlog_seconds: float,
    minimum_backlog: int,
    on_tick: Tick,
) -> None:
    """Keep notifier saturated for ``seconds``: whenever the texts and emails published
    but not yet received fall below about ``backlog_seconds`` of its observed rate, publish
    more. The offered load follows the completions (a closed loop), so the backlog stays
    bounded and the run measures throughput, not how fast Kafka fills up."""
    started = time.monotonic()
    first = await delivered()
    while True:
        now = time.monotonic()
        if now - started >= seconds:
            break
        received = await delivered()
        rate = (received - first) / max(now - started, 0.001)
        backlog = max(minimum_backlog, int(rate * backlog_seconds))
        while load.published_sends - received < backlog:
            await load.publish_request()
        await load.flush()
        await on_tick()
        await asyncio.sleep(0.05)
    await load.flush()


async def open_loop(load: Load, rate: float, *, seconds: float) -> float:
    """Publish requests at ``rate`` per second for ``seconds``, on a fixed schedule that does
    not wait for notifier (an open loop: queueing shows up as latency). The rate achieved."""
    interval = 1.0 / rate
    started = time.monotonic()
    due = started
    count = 0
    while (now := time.monotonic()) < started + seconds:
        while due <= now:
            await load.publish_request()
            count += 1
            due += interval
        # Without this, the producer batches for its linger time while we sleep anyway.
        await load.flush()
        await asyncio.sleep(max(0.0, min(due - time.monotonic(), 0.01)))
    await load.flush()
    return count / (time.monotonic() - started)


@dataclass(frozen=True, slots=True)
class ReadLimit:
    records: int
    seconds: float
    passes: int

    @property
    def per_second(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


async def bare_consumer(
    bootstrap: str, topic: str, partition_count: int, *, records: int
) -> ReadLimit:
    """How fast a plain aiokafka consumer reads (and JSON-decodes) the records now in
    ``topic``: the ceiling any consumer in Python has on this broker and machine. The
    topic is read from the start again until ``records`` were read (a slow notifier
    leaves too few for one pass to take measurable time)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(partition_count)]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        total = sum(ends.values())
        read = passes = 0
        started = time.monotonic()
        while total and read < records:
            await consumer.seek_to_beginning(*partitions)
            passes += 1
            target = read + total
            while read < target:
                batches = await consumer.getmany(timeout_ms=1000, max_records=2000)
                for batch in batches.values():
                    for record in batch:
                        orjson.loads(record.value)
                    read += len(batch)
        return ReadLimit(read, time.monotonic() - started, passes)
    finally:
        await consumer.stop()

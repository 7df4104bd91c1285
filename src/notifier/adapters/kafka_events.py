"""Delivery events onto notifier.delivery-events, keyed by conversation so that one
conversation's events stay in order on one partition."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner, murmur2
from faststream.kafka import KafkaBroker

from notifier.domain.model import DeliveryEvent, Reply
from notifier.wire import encode_event, encode_reply

JSON_HEADERS = {"content-type": "application/json"}
_JSON_HEADER_LIST = [(name, value.encode()) for name, value in JSON_HEADERS.items()]


class RememberingPartitioner:
    """The Java client's partitioning (aiokafka's DefaultPartitioner), with each key's hash
    remembered: aiokafka's murmur2 is pure Python, a conversation's id is the key of every
    event of its deliveries, and the same few thousand conversations are busy at a time."""

    def __init__(self, remembered_keys: int = 16_384) -> None:
        self._hash: Callable[[bytes], int] = lru_cache(maxsize=remembered_keys)(murmur2)

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            chosen: int = DefaultPartitioner()(key, all_partitions, available)
            return chosen
        # all_partitions is sorted by id: the same index rule as DefaultPartitioner's.
        return all_partitions[(self._hash(key) & 0x7FFFFFFF) % len(all_partitions)]


class KafkaEventPublisher:
    """Several events per delivery make this the busiest producer of the service, so it has
    an aiokafka producer of its own: FastStream's publish path (its middlewares, a metric
    per record) costs several times the producer's own work for each record."""

    def __init__(self, producer: AIOKafkaProducer, topic: str) -> None:
        self._producer = producer
        self._topic = topic

    async def publish(self, events: Sequence[DeliveryEvent]) -> None:
        # Hand all records to the producer first and then wait for their acks together, so
        # a request's events share the producer's batches instead of one round trip each.
        pending = [
            await self._producer.send(
                self._topic,
                encode_event(event),
                key=event.conversation_id.encode(),
                headers=_JSON_HEADER_LIST,
            )
            for event in events
        ]
        # They are acknowledged together, batch by batch: once the first is, the rest
        # mostly are too, and awaiting a done future costs less than gather's bookkeeping.
        for acknowledged in pending:
            await acknowledged


class KafkaReplyPublisher:
    """Replies onto conversation.replies, keyed by conversation."""

    def __init__(self, broker: KafkaBroker, topic: str) -> None:
        self._broker = broker
        self._topic = topic

    async def publish(self, reply: Reply) -> None:
        await self._broker.publish(
            encode_reply(reply),
            topic=self._topic,
            key=reply.conversation_id.encode(),
            headers=JSON_HEADERS,
        )

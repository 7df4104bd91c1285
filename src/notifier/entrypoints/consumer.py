"""The Kafka edge: FastStream subscribers for send requests and the directory.

Acknowledgement, chosen deliberately (FastStream's Kafka default, ACK_FIRST, commits before
the work is done and loses it on a crash):

* Subscribers take **batches** with ``AckPolicy.MANUAL``; a batch's offsets are committed
  once every request in it, and in every batch read before it, has reached a recorded
  state — at-least-once, and several times cheaper than a commit per message. The requests
  of a batch run concurrently, and several batches are open at once (``batches.py``), so a
  slow tail of provider calls doesn't hold back the next batch.
* Bad input never raises out of a handler: it goes to the dead-letter topic with a reason and
  the batch goes on, so a poison message cannot wedge a partition.
* Anything else (database or broker down) leaves the batch uncommitted: we wait with backoff
  and rewind to its first offsets, instead of ``NACK_ON_ERROR``'s immediate retry loop.
  Redelivered work is recognised by its deterministic delivery ids and not repeated.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.middlewares import AckPolicy
from pydantic import BaseModel, TypeAdapter, ValidationError

from notifier.bootstrap import Container
from notifier.config import KafkaSettings
from notifier.domain.errors import RejectionCode, RequestRejected
from notifier.domain.model import SendRequest
from notifier.entrypoints.batches import BatchPipeline
from notifier.handlers import (
    apply_district,
    apply_recipient,
    remove_district,
    remove_recipient,
)
from notifier.handlers.delivery import RequestReport
from notifier.handlers.directory import apply_conversation_state, remove_conversation_state
from notifier.handlers.follow_up import (
    deliver_and_fail_over,
    deliver_and_fail_over_all,
    fail_over_overdue,
)
from notifier.logs import logging_context
from notifier.ports import DatabaseHealth, Metrics
from notifier.wire import (
    ConversationStateWire,
    DistrictWire,
    RecipientWire,
    RecordKey,
    SendRequestWire,
)

log = logging.getLogger(__name__)

SubscriberDecorator = Callable[[Callable[[KafkaMessage], Coroutine[Any, Any, None]]], object]
ModelT = TypeVar("ModelT", bound=BaseModel)

RETRY_BACKOFF_SECONDS = (1.0, 2.0, 5.0, 10.0, 30.0)


def register_subscribers(container: Container) -> None:
    """Attach notifier's subscriber to the container's broker (before it starts).

    One consumer reads all three input topics. Three consumers in the one ``notifier`` group
    would rebalance the group each time one of them joins or leaves, stalling the others
    for a heartbeat or two at every start, deploy and scale-out.
    """
    settings = container.settings.kafka
    broker = container.broker
    dead_letters = DeadLetters(broker, settings.dead_letter_topic)
    directory_topics = {
        settings.recipients_topic,
        settings.districts_topic,
        settings.conversation_state_topic,
    }

    async def deliver_one(record: ConsumerRecord[Any, Any]) -> None:
        try:
            request = _parse(SendRequestWire, record).to_domain()
            with (
                logging_context(
                    message_id=request.message_id, conversation_id=request.conversation_id
                ),
                _refusing_bad_data(container.store.database),
            ):
                report = await deliver_and_fail_over(request, container.follow_up)
        except RequestRejected as rejected:
            await dead_letters.send(record, rejected)
            container.metrics.request_processed("dead_lettered")
            return
        count_processed(report)

    def count_processed(report: RequestReport) -> None:
        # A duplicate repeats deliveries an earlier copy made; a request with nobody to
        # tell (only its sender among the recipients) is still processed.
        outcome = (
            "duplicate"
            if report.outcomes and report.repeated == len(report.outcomes)
            else "processed"
        )
        container.metrics.request_processed(outcome)

    async def deliver_batch(records: Sequence[ConsumerRecord[Any, Any]]) -> None:
        parsed: list[tuple[ConsumerRecord[Any, Any], SendRequest]] = []
        for record in records:
            try:
                parsed.append((record, _parse(SendRequestWire, record).to_domain()))
            except RequestRejected as rejected:
                await dead_letters.send(record, rejected)
                container.metrics.request_processed("dead_lettered")
        if not parsed:
            return
        try:
            with _refusing_bad_data(container.store.database):
                reports = await deliver_and_fail_over_all(
                    [request for _, request in parsed], container.follow_up
                )
        except RequestRejected:
            # One request's own data broke the batch: each alone, so that only it is
            # dead-lettered (what the batch did meanwhile is found and not repeated).
            async with asyncio.TaskGroup() as group:
                for record, _ in parsed:
                    group.create_task(deliver_one(record))
            return
        for (record, _), report in zip(parsed, reports, strict=True):
            if isinstance(report, RequestRejected):
                await dead_letters.send(record, report)
                container.metrics.request_processed("dead_lettered")
            else:
                count_processed(report)

    async def apply_directory_event(record: ConsumerRecord[Any, Any]) -> None:
        kind = {
            settings.recipients_topic: "recipient",
            settings.districts_topic: "district",
            settings.conversation_state_topic: "conversation_state",
        }[record.topic]
        database, directory = container.store.database, container.store.directory
        if record.value is None:  # a tombstone: the key left the directory
            remove = {
                "recipient": remove_recipient,
                "district": remove_district,
                "conversation_state": remove_conversation_state,
            }[kind]
            try:
                key = _key(record)
                with _refusing_bad_data(database):
                    removed = await remove(key, directory)
            except RequestRejected as rejected:
                await dead_letters.send(record, rejected)
                container.metrics.directory_event(kind, "dead_lettered")
                return
            container.metrics.directory_event(kind, "deleted" if removed else "ignored")
            return
        try:
            with _refusing_bad_data(database):
                if kind == "recipient":
                    recipient = _parse(RecipientWire, record).to_domain()
                    applied = await apply_recipient(recipient, directory)
                elif kind == "conversation_state":
                    state = _parse(ConversationStateWire, record).to_domain()
                    applied = await apply_conversation_state(state, directory)
                else:
                    await apply_district(_parse(DistrictWire, record).to_domain(), directory)
                    applied = True
        except RequestRejected as rejected:
            await dead_letters.send(record, rejected)
            container.metrics.directory_event(kind, "dead_lettered")
            return
        container.metrics.directory_event(kind, "applied" if applied else "stale")

    async def apply_directory(records: Sequence[ConsumerRecord[Any, Any]]) -> None:
        # In order, before the next batch is read (the same key's events must not overtake
        # each other), so requests see the profiles that came before them.
        for record in records:
            if record.topic in directory_topics:
                await apply_directory_event(record)

    async def deliver(records: Sequence[ConsumerRecord[Any, Any]]) -> None:
        await deliver_batch([r for r in records if r.topic not in directory_topics])

    pipeline = BatchPipeline(
        head=apply_directory,
        tail=deliver,
        max_open=settings.max_open_batches,
        backoff=RETRY_BACKOFF_SECONDS,
        drain_timeout=settings.graceful_timeout_seconds,
    )
    container.before_stop.append(lambda: pipeline.drain(closing=True))

    @input_subscriber(broker, settings, _DrainOnRevoke(pipeline, container.metrics))
    async def on_batch(message: KafkaMessage) -> None:
        consumer = message.consumer
        if not isinstance(consumer, AIOKafkaConsumer):  # FastStream's in-memory test broker
            raise TypeError("notifier's subscriber needs a real Kafka consumer")
        await pipeline.start(message.raw_message, consumer)
        _report_lag(message, consumer, container.metrics)


class _DrainOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Partitions about to move to another consumer: finish and commit what is open first,
    so the new owner doesn't repeat it (within the graceful timeout); their lag is then the
    new owner's to report."""

    def __init__(self, pipeline: BatchPipeline, metrics: Metrics) -> None:
        self._pipeline = pipeline
        self._metrics = metrics

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        if revoked:
            await self._pipeline.drain()
        for partition in revoked:
            self._metrics.consumer_lag_gone(partition.topic, partition.partition)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        return None


def input_subscriber(
    broker: KafkaBroker,
    settings: KafkaSettings,
    listener: ConsumerRebalanceListener | None = None,
) -> SubscriberDecorator:
    """The one batch subscriber on the three input topics (see register_subscribers)."""
    return broker.subscriber(
        settings.send_requests_topic,
        settings.recipients_topic,
        settings.districts_topic,
        settings.conversation_state_topic,
        title="notifier",
        description=(
            "send-request/1 on the send-requests topic; recipient/1, district/1 and "
            "conversation-state/1 (compacted, a null value deletes) on the others."
        ),
        group_id=settings.group_id,
        batch=True,
        max_records=settings.batch_max_records,
        batch_timeout_ms=settings.batch_timeout_ms,
        auto_offset_reset=settings.auto_offset_reset,
        ack_policy=AckPolicy.MANUAL,
        listener=listener,
        # Only the raw records are used; skip FastStream's own decoding of each body.
        decoder=_no_decoding,
    )


def _report_lag(message: KafkaMessage, consumer: AIOKafkaConsumer, metrics: Metrics) -> None:
    """Records behind the end of each partition just read (the fetcher's high watermark
    less the next offset to read): the consumer-lag gauge ops alert on."""
    last_read: dict[TopicPartition, int] = {}
    for record in message.raw_message:
        last_read[TopicPartition(record.topic, record.partition)] = record.offset
    for partition, offset in last_read.items():
        highwater = consumer.highwater(partition)
        if highwater is not None:
            metrics.consumer_lag(
                partition.topic, partition.partition, max(0, highwater - offset - 1)
            )


async def _no_decoding(message: Any) -> None:
    return None


_RECORD_KEY = TypeAdapter(RecordKey)


def _key(record: ConsumerRecord[Any, Any]) -> str:
    key = record.key
    if key is None:
        raise RequestRejected(RejectionCode.SCHEMA_ERROR, "A tombstone needs the key it deletes.")
    try:
        text = key.decode() if isinstance(key, bytes) else str(key)
    except UnicodeDecodeError:
        raise RequestRejected(RejectionCode.SCHEMA_ERROR, "The key is not UTF-8 text.") from None
    try:
        return _RECORD_KEY.validate_python(text)
    except ValidationError as error:
        raise RequestRejected(
            RejectionCode.SCHEMA_ERROR, f"key: {error.errors()[0]['msg']}"
        ) from None


_DATA_ERRORS = (ValueError, ArithmeticError, LookupError, TypeError)
"""What a message's own values raise deep in processing (an overflowing date, a code no table
knows); never what an unavailable database or broker raises."""


@contextmanager
def _refusing_bad_data(database: DatabaseHealth) -> Iterator[None]:
    """Turns a failure this message's own data caused into a rejection to dead-letter, so
    one message can't stop the partition. Anything else propagates and the batch is retried:
    an outage must not dead-letter good messages."""
    try:
        yield
    except RequestRejected:
        raise
    except Exception as error:
        if not (isinstance(error, _DATA_ERRORS) or database.refuses_data(error)):
            raise
        # The first line only: a database error goes on with the statement and its
        # parameters, which hold the message's text and the people's details.
        first_line = str(error).partition("\n")[0]
        detail = f"{type(error).__name__}: {first_line}"[:1000]
        log.error("message unprocessable: %s", detail)
        raise RequestRejected(RejectionCode.UNPROCESSABLE, detail) from error


def _parse(model: type[ModelT], record: ConsumerRecord[Any, Any]) -> ModelT:
    if record.value is None:
        raise RequestRejected(RejectionCode.SCHEMA_ERROR, "The message has no value.")
    try:
        data = orjson.loads(record.value)
    except orjson.JSONDecodeError as error:
        raise RequestRejected(
            RejectionCode.INVALID_JSON, f"The message is not valid JSON: {error}."
        ) from None
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise RequestRejected(RejectionCode.SCHEMA_ERROR, _describe(error)) from None


def _describe(error: ValidationError) -> str:
    problems = [
        f"{'.'.join(str(p) for p in item['loc']) or 'message'}: {item['msg']}"
        for item in error.errors()[:5]
    ]
    more = f" (and {error.error_count() - 5} more)" if error.error_count() > 5 else ""
    return "; ".join(problems) + more


class DeadLetters:
    """Publishes unprocessable input, byte for byte, with the reason and its origin."""

    def __init__(self, broker: KafkaBroker, topic: str) -> None:
        self._broker = broker
        self._topic = topic

    async def send(self, record: ConsumerRecord[Any, Any], rejected: RequestRejected) -> None:
        log.warning(
            "dead-lettering %s[%d]@%d: %s",
            record.topic,
            record.partition,
            record.offset,
            rejected,
        )
        await self._broker.publish(
            record.value or b"",
            topic=self._topic,
            key=record.key,
            headers={
                "x-notifier-error": rejected.code.value,
                "x-notifier-detail": rejected.detail[:1000],
                "x-notifier-source-topic": record.topic,
                "x-notifier-source-partition": str(record.partition),
                "x-notifier-source-offset": str(record.offset),
            },
        )


async def run_overdue_timer(container: Container) -> None:
    """Every few seconds, fail over what never reached a final status (the durable timer is
    the store; this loop only wakes it), and refresh the contact-point gauge. Runs beside
    the consumer until cancelled."""
    interval = container.settings.delivery.overdue_check_seconds
    while True:
        try:
            handled = await fail_over_overdue(container.follow_up)
            if handled:
                log.info("failed over %d overdue deliveries", handled)
            container.metrics.contact_points(
                await container.store.contact_points.contact_point_counts()
            )
        except Exception:
            log.exception("overdue check failed; trying again in %.0f s", interval)
        await asyncio.sleep(interval)

"""Several Kafka batches in flight at once, their offsets committed in order.

A batch's deliveries end with a slow tail: the last provider answers, a retry's backoff.
Waiting for that tail before reading the next batch left most of the in-flight slots idle
at a realistic provider latency. So the handler returns as soon as a batch has *started*
(its directory events applied, its deliveries running) and the next batch is read while
the tail is still out, up to ``max_open`` batches at once.

What is committed is still only what is done. Each batch's offsets are committed when it
and every batch read before it have finished: per partition, one past its last record,
never the consumer's position (which already covers batches still running). A batch that
still fails after its in-place retries rewinds every partition to the earliest record of
that batch and of all those read after it, and those batches lose their right to commit;
the records are read again and their finished deliveries are recognised by their ids and
not repeated. Before partitions are taken away (a rebalance) or the consumer stops, the
open batches are waited for and committed, within the graceful timeout.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

log = logging.getLogger(__name__)

Records = Sequence[ConsumerRecord[Any, Any]]
Stage = Callable[[Records], Awaitable[None]]


class OffsetConsumer(Protocol):
    """What the pipeline needs of the Kafka consumer (``AIOKafkaConsumer`` has it)."""

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None: ...

    def seek(self, partition: TopicPartition, offset: int) -> None: ...

    def assignment(self) -> set[TopicPartition]: ...


@dataclass(eq=False)
class _OpenBatch:
    consumer: OffsetConsumer
    first: dict[TopicPartition, int]
    """The earliest offset of each partition in the batch: where a rewind goes back to."""
    after_last: dict[TopicPartition, int]
    """One past the last offset of each partition: what committing the batch records."""
    done: bool = False
    dropped: bool = False
    """Rewound (its records will be read again) or given up at shutdown: never committed."""


@dataclass(eq=False)
class BatchPipeline:
    """``start`` is the subscriber's handler. ``head`` runs before the next batch is read
    (the directory events, which must apply in order); ``tail`` runs while later batches
    start (the deliveries). Each stage is retried in place with ``backoff`` first."""

    head: Stage
    tail: Stage
    max_open: int
    backoff: Sequence[float]
    drain_timeout: float
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    _open: deque[_OpenBatch] = field(default_factory=deque, init=False)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set, init=False)
    _slots: asyncio.Semaphore = field(init=False)
    _committing: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)
    _closing: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self._slots = asyncio.Semaphore(self.max_open)

    @property
    def open_batches(self) -> int:
        return len(self._open)

    async def start(self, records: Records, consumer: OffsetConsumer) -> None:
        if self._closing or not records:
            # Stopping: left uncommitted, to be read again by whoever consumes next.
            return
        slots = self._slots
        await slots.acquire()
        batch = _OpenBatch(consumer, *_offsets(records))
        self._open.append(batch)
        if not await self._retrying(self.head, records):
            slots.release()
            await self._settle(batch, succeeded=False)
            return
        task = asyncio.create_task(self._finish(batch, records, slots))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self, *, closing: bool = False) -> None:
        """Wait for the open batches and commit them; those still running after the drain
        timeout lose their right to commit (their records are read again). ``closing``:
        batches read from now on are not started."""
        self._closing = self._closing or closing
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=self.drain_timeout)
            if pending:
                log.warning(
                    "%d batches still running after %.0f s: left uncommitted, to be read again",
                    len(pending),
                    self.drain_timeout,
                )
        for batch in self._open:
            batch.dropped = True
        self._open.clear()

    async def _finish(self, batch: _OpenBatch, records: Records, slots: asyncio.Semaphore) -> None:
        try:
            succeeded = await self._retrying(self.tail, records)
        finally:
            slots.release()
        await self._settle(batch, succeeded=succeeded)

    async def _retrying(self, stage: Stage, records: Records) -> bool:
        for attempt, backoff in enumerate((*self.backoff, None)):
            try:
                await stage(records)
            except Exception:
                if backoff is None:
                    break
                log.exception(
                    "batch of %d records failed (attempt %d); retrying in %.0f s",
                    len(records),
                    attempt + 1,
                    backoff,
                )
                await self.sleep(backoff)
                continue
            return True
        log.error("batch of %d records still failing; rewinding to retry it later", len(records))
        return False

    async def _settle(self, batch: _OpenBatch, *, succeeded: bool) -> None:
        if batch.dropped:
            return
        batch.done = True
        if not succeeded:
            self._rewind_from(batch)
        await self._commit_finished()

    def _rewind_from(self, failed: _OpenBatch) -> None:
        """Back to the failed batch's first records, and those of every batch read after
        it: none of them may be committed now, since a commit covers the whole partition
        up to its offset."""
        position = self._open.index(failed)
        rewound = [self._open[i] for i in range(position, len(self._open))]
        earliest: dict[TopicPartition, int] = {}
        for batch in rewound:
            batch.dropped = True
            for partition, offset in batch.first.items():
                earliest[partition] = min(offset, earliest.get(partition, offset))
        for _ in rewound:
            self._open.pop()
        assigned = failed.consumer.assignment()
        for partition, offset in earliest.items():
            # A partition taken away meanwhile resumes from its commit on its new owner.
            if partition in assigned:
                failed.consumer.seek(partition, offset)

    async def _commit_finished(self) -> None:
        async with self._committing:
            offsets: dict[TopicPartition, int] = {}
            consumer: OffsetConsumer | None = None
            while self._open and self._open[0].done:
                batch = self._open.popleft()
                consumer = batch.consumer
                for partition, offset in batch.after_last.items():
                    offsets[partition] = max(offset, offsets.get(partition, offset))
            if consumer is None:
                return
            assigned = consumer.assignment()
            owned = {p: o for p, o in offsets.items() if p in assigned}
            if not owned:
                return
            try:
                await consumer.commit(owned)
            except KafkaError as error:
                # Lost the partitions to a rebalance, or the broker is gone: the records
                # will be read again and their deliveries recognised, not repeated.
                log.warning("could not commit %d partitions: %s", len(owned), error)


def _offsets(records: Records) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
    first: dict[TopicPartition, int] = {}
    after_last: dict[TopicPartition, int] = {}
    for record in records:
        partition = TopicPartition(record.topic, record.partition)
        first[partition] = min(record.offset, first.get(partition, record.offset))
        after_last[partition] = max(record.offset + 1, after_last.get(partition, 0))
    return first, after_last

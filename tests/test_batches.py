"""Open batches committed in order (entrypoints/batches.py), against an in-memory consumer."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition

from notifier.entrypoints.batches import BatchPipeline, Records
from notifier.entrypoints.consumer import _DrainOnRevoke
from notifier.metrics import PrometheusMetrics

P0 = TopicPartition("requests", 0)
P1 = TopicPartition("requests", 1)


@dataclass
class MemoryConsumer:
    assigned: set[TopicPartition] = field(default_factory=lambda: {P0, P1})
    commits: list[dict[TopicPartition, int]] = field(default_factory=list)
    seeks: list[tuple[TopicPartition, int]] = field(default_factory=list)

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.seeks.append((partition, offset))

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)


def records(*offsets: tuple[TopicPartition, int]) -> list[ConsumerRecord[Any, Any]]:
    return [
        ConsumerRecord(p.topic, p.partition, o, 0, 0, None, b"{}", None, 0, 2, [])
        for p, o in offsets
    ]


@dataclass
class Gates:
    """The tail of each batch waits for its gate (by its first offset), and may fail."""

    opened: dict[int, asyncio.Event] = field(default_factory=dict)
    failing: set[int] = field(default_factory=set)
    tails_started: list[int] = field(default_factory=list)
    heads: list[int] = field(default_factory=list)

    def gate(self, first: int) -> asyncio.Event:
        return self.opened.setdefault(first, asyncio.Event())

    async def head(self, batch: Records) -> None:
        self.heads.append(batch[0].offset)

    async def tail(self, batch: Records) -> None:
        first = batch[0].offset
        self.tails_started.append(first)
        await self.gate(first).wait()
        if first in self.failing:
            raise ConnectionError("database away")


async def no_sleep(_: float) -> None:
    return None


def pipeline(gates: Gates, *, max_open: int = 4, drain_timeout: float = 5.0) -> BatchPipeline:
    return BatchPipeline(
        head=gates.head,
        tail=gates.tail,
        max_open=max_open,
        backoff=(1.0,),
        drain_timeout=drain_timeout,
        sleep=no_sleep,
    )


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_a_later_batch_that_finishes_first_waits_for_the_earlier_to_commit() -> None:
    gates, consumer = Gates(), MemoryConsumer()
    batches = pipeline(gates)
    await batches.start(records((P0, 10), (P1, 4)), consumer)
    await batches.start(records((P0, 11), (P0, 12)), consumer)
    await settle()
    assert gates.tails_started == [10, 11]  # the second started while the first was out

    gates.gate(11).set()
    await settle()
    assert consumer.commits == []  # done, but behind a batch still running

    gates.gate(10).set()
    await settle()
    assert consumer.commits == [{P0: 13, P1: 5}]
    assert batches.open_batches == 0


async def test_a_batch_failing_for_good_rewinds_itself_and_every_later_batch() -> None:
    gates, consumer = Gates(failing={20}), MemoryConsumer()
    batches = pipeline(gates)
    await batches.start(records((P0, 10)), consumer)
    await batches.start(records((P0, 20), (P1, 7)), consumer)
    await batches.start(records((P1, 8), (P0, 21)), consumer)
    gates.gate(20).set()
    await settle()
    # Rewound to the failed batch's first records and the later batch's, partition by
    # partition; nothing committed, since the first batch is still running.
    assert sorted(consumer.seeks) == [(P0, 20), (P1, 7)]
    assert consumer.commits == []

    gates.gate(8).set()  # the later batch finishes: it lost its right to commit
    gates.gate(10).set()
    await settle()
    assert consumer.commits == [{P0: 11}]
    assert batches.open_batches == 0


async def test_a_failing_batch_is_retried_in_place_before_it_rewinds() -> None:
    attempts: list[int] = []

    async def flaky(batch: Records) -> None:
        attempts.append(batch[0].offset)
        if len(attempts) == 1:
            raise ConnectionError("database restarting")

    consumer = MemoryConsumer()
    batches = BatchPipeline(
        head=Gates().head, tail=flaky, max_open=2, backoff=(1.0,), drain_timeout=5, sleep=no_sleep
    )
    await batches.start(records((P0, 3)), consumer)
    await settle()
    assert attempts == [3, 3]
    assert consumer.seeks == []
    assert consumer.commits == [{P0: 4}]


async def test_no_more_batches_start_than_max_open() -> None:
    gates, consumer = Gates(), MemoryConsumer()
    batches = pipeline(gates, max_open=2)
    await batches.start(records((P0, 1)), consumer)
    await batches.start(records((P0, 2)), consumer)
    third = asyncio.create_task(batches.start(records((P0, 3)), consumer))
    await settle()
    assert gates.heads == [1, 2]
    assert not third.done()

    gates.gate(1).set()
    await settle()
    assert third.done()
    assert gates.heads == [1, 2, 3]
    assert consumer.commits == [{P0: 2}]


async def test_draining_to_stop_commits_what_finishes_and_starts_nothing_more() -> None:
    gates, consumer = Gates(), MemoryConsumer()
    batches = pipeline(gates)
    await batches.start(records((P0, 1)), consumer)
    drained = asyncio.create_task(batches.drain(closing=True))
    await settle()
    assert not drained.done()

    gates.gate(1).set()
    await drained
    assert consumer.commits == [{P0: 2}]

    await batches.start(records((P0, 2)), consumer)
    await settle()
    assert gates.heads == [1]  # left unread-as-done: the next consumer reads it again


async def test_a_batch_still_running_after_the_drain_timeout_never_commits() -> None:
    gates, consumer = Gates(), MemoryConsumer()
    batches = pipeline(gates, drain_timeout=0.01)
    await batches.start(records((P0, 1)), consumer)
    await batches.drain()
    gates.gate(1).set()
    await settle()
    assert consumer.commits == []
    assert batches.open_batches == 0


async def test_only_partitions_still_assigned_are_committed_or_rewound() -> None:
    gates, consumer = Gates(failing={5}), MemoryConsumer()
    batches = pipeline(gates)
    await batches.start(records((P0, 1), (P1, 1)), consumer)
    await batches.start(records((P0, 5), (P1, 5)), consumer)
    consumer.assigned = {P0}  # P1 went to another consumer meanwhile
    gates.gate(1).set()
    gates.gate(5).set()
    await settle()
    assert consumer.commits == [{P0: 2}]
    assert consumer.seeks == [(P0, 5)]


async def test_partitions_taken_away_are_committed_and_their_lag_no_longer_reported() -> None:
    gates = Gates()
    batches = pipeline(gates)
    metrics = PrometheusMetrics()
    consumer = MemoryConsumer()
    metrics.consumer_lag(P0.topic, P0.partition, 12)
    metrics.consumer_lag(P1.topic, P1.partition, 3)
    await batches.start(records((P0, 5)), consumer)
    gates.gate(5).set()

    await _DrainOnRevoke(batches, metrics).on_partitions_revoked({P0})

    assert consumer.commits == [{P0: 6}], "what was open is committed before they go"

    def lag(partition: TopicPartition) -> float | None:
        return metrics.registry.get_sample_value(
            "notifier_consumer_lag",
            {"topic": partition.topic, "partition": str(partition.partition)},
        )

    assert (lag(P0), lag(P1)) == (None, 3)
    metrics.consumer_lag(P0.topic, P0.partition, 1)  # assigned back later: reported again
    assert lag(P0) == 1

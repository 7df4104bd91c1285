"""GroupCommit: concurrent writes share a transaction, and each caller still gets its own
result or error."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from notifier.adapters.group_commit import GroupCommit


class RefusedValue(Exception):
    """Stands for the database refusing one item's value."""


class Unreachable(Exception):
    """Stands for the database being down."""


class RecordingWriter:
    """A fake transaction: records each batch it is given, refuses "bad" items and, while
    ``down``, everything."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.down = False

    async def write_many(self, items: Sequence[str]) -> list[str]:
        self.batches.append(list(items))
        await asyncio.sleep(0.01)  # a commit takes a while; more writes arrive meanwhile
        if self.down:
            raise Unreachable("database down")
        if "bad" in items:
            raise RefusedValue("refused")
        return [item.upper() for item in items]


def group(
    writer: RecordingWriter, max_batch: int = 500, linger_seconds: float = 0.0
) -> GroupCommit[str, str]:
    return GroupCommit(
        writer.write_many,
        isolates=lambda error: isinstance(error, RefusedValue),
        max_batch=max_batch,
        linger_seconds=linger_seconds,
    )


async def test_concurrent_writes_share_one_transaction_and_get_their_own_results() -> None:
    writer = RecordingWriter()
    commit = group(writer)

    results = await asyncio.gather(*(commit.write(f"item-{n}") for n in range(20)))

    assert results == [f"ITEM-{n}" for n in range(20)]
    assert writer.batches == [[f"item-{n}" for n in range(20)]]


async def test_writes_arriving_during_a_commit_go_together_in_the_next() -> None:
    writer = RecordingWriter()
    commit = group(writer)

    first = asyncio.create_task(commit.write("a"))
    await asyncio.sleep(0.005)  # the first transaction is under way
    later = await asyncio.gather(commit.write("b"), commit.write("c"))

    assert await first == "A"
    assert later == ["B", "C"]
    assert writer.batches == [["a"], ["b", "c"]]


async def test_writes_a_little_apart_share_the_lingering_first_ones_transaction() -> None:
    writer = RecordingWriter()
    commit = group(writer, linger_seconds=0.5)

    first = asyncio.create_task(commit.write("a"))
    await asyncio.sleep(0.02)  # well within the linger: nothing written yet
    assert writer.batches == []
    later = await commit.write("b")

    assert (await first, later) == ("A", "B")
    assert writer.batches == [["a", "b"]]


async def test_a_batch_is_never_larger_than_the_limit() -> None:
    writer = RecordingWriter()
    commit = group(writer, max_batch=3)

    await asyncio.gather(*(commit.write(str(n)) for n in range(7)))

    assert [len(batch) for batch in writer.batches] == [3, 3, 1]


async def test_one_refused_item_fails_only_its_own_write() -> None:
    writer = RecordingWriter()
    commit = group(writer)

    results = await asyncio.gather(
        commit.write("a"), commit.write("bad"), commit.write("c"), return_exceptions=True
    )

    assert results[0] == "A"
    assert isinstance(results[1], RefusedValue)
    assert results[2] == "C"


async def test_an_outage_fails_every_write_of_the_batch_without_retrying_each() -> None:
    writer = RecordingWriter()
    writer.down = True
    commit = group(writer)

    results = await asyncio.gather(commit.write("a"), commit.write("b"), return_exceptions=True)

    assert all(isinstance(result, Unreachable) for result in results)
    assert writer.batches == [["a", "b"]]


async def test_writes_go_on_after_a_failed_batch() -> None:
    writer = RecordingWriter()
    commit = group(writer)
    writer.down = True
    with pytest.raises(Unreachable):
        await commit.write("a")

    writer.down = False

    assert await commit.write("b") == "B"


async def test_write_all_joins_the_pending_writes_and_returns_its_results_in_order() -> None:
    writer = RecordingWriter()
    commit = group(writer)

    alone = asyncio.create_task(commit.write("a"))
    await asyncio.sleep(0)  # the single write is pending, its transaction not yet begun
    together = await commit.write_all(["b", "c", "d"])

    assert (await alone, together) == ("A", ["B", "C", "D"])
    assert writer.batches == [["a", "b", "c", "d"]]


async def test_write_all_raises_the_first_failure_once_every_item_is_written() -> None:
    writer = RecordingWriter()
    commit = group(writer)

    with pytest.raises(RefusedValue):
        await commit.write_all(["a", "bad", "c"])

    # The refused batch was written again item by item: the good items are in.
    assert writer.batches == [["a", "bad", "c"], ["a"], ["bad"], ["c"]]

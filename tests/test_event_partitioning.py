"""Delivery events are keyed by conversation so that one conversation's events keep their
order on one partition, the partition any Java-client producer would choose for that key."""

from __future__ import annotations

import pytest
from aiokafka.partitioner import DefaultPartitioner, murmur2

from notifier.adapters.kafka_events import RememberingPartitioner

# Kafka's own test vectors for its murmur2 (clients' UtilsTest), as unsigned 32-bit values.
JAVA_MURMUR2 = {
    b"21": -973932308 & 0xFFFFFFFF,
    b"foobar": -790332482 & 0xFFFFFFFF,
    b"a-little-bit-long-string": -985981536 & 0xFFFFFFFF,
    b"abc": 479470107,
}


@pytest.mark.parametrize(("key", "hashed"), JAVA_MURMUR2.items())
@pytest.mark.parametrize("partition_count", [1, 3, 6, 12, 50])
def test_a_key_goes_to_the_partition_the_java_client_chooses(
    key: bytes, hashed: int, partition_count: int
) -> None:
    partitions = list(range(partition_count))
    choose = RememberingPartitioner()

    expected = partitions[(hashed & 0x7FFFFFFF) % partition_count]

    assert choose(key, partitions, partitions) == expected
    # Asked again, from what it remembers: the same answer.
    assert choose(key, partitions, partitions) == expected


def test_a_remembered_key_follows_a_change_in_the_partition_count() -> None:
    choose = RememberingPartitioner()
    key = b"conv-77"
    on_three = choose(key, [0, 1, 2], [0, 1, 2])

    on_twelve = choose(key, list(range(12)), list(range(12)))

    hashed = murmur2(key) & 0x7FFFFFFF
    assert (on_three, on_twelve) == (hashed % 3, hashed % 12)


def test_keys_beyond_what_it_remembers_are_partitioned_as_aiokafka_does() -> None:
    choose = RememberingPartitioner(remembered_keys=2)
    keys = [f"conv-{n}".encode() for n in range(10)] * 2
    partitions = list(range(6))

    chosen = [choose(key, partitions, partitions) for key in keys]

    assert chosen == [DefaultPartitioner()(key, partitions, partitions) for key in keys]
    assert len(set(chosen)) > 1

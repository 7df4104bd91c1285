"""What the consumer dead-letters as its own data's fault, and what it retries."""

from __future__ import annotations

import pytest
from aiokafka import ConsumerRecord

from notifier.adapters.store import Storage
from notifier.domain.errors import RejectionCode, RequestRejected
from notifier.entrypoints.consumer import _key, _refusing_bad_data


def test_a_failure_of_the_messages_own_data_is_a_rejection_without_its_details(
    store: Storage,
) -> None:
    with pytest.raises(RequestRejected) as rejected, _refusing_bad_data(store.database):
        raise OverflowError("date value out of range\n[parameters: ('Dennis', '+15555550123')]")

    assert rejected.value.code is RejectionCode.UNPROCESSABLE
    assert rejected.value.detail == "OverflowError: date value out of range"


def test_an_outage_is_not_a_rejection(store: Storage) -> None:
    # Retried with the batch: a good message must not be dead-lettered while a service is down.
    with pytest.raises(ConnectionRefusedError), _refusing_bad_data(store.database):
        raise ConnectionRefusedError("database down")


def test_a_rejection_passes_through_unchanged(store: Storage) -> None:
    unknown = RequestRejected(RejectionCode.UNKNOWN_DISTRICT, "District 'd-x' is unknown.")

    with pytest.raises(RequestRejected) as rejected, _refusing_bad_data(store.database):
        raise unknown

    assert rejected.value is unknown


def tombstone(key: bytes) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord("directory.recipients", 0, 7, 0, 0, key, None, None, len(key), 0, ())


def test_a_tombstone_keyed_by_an_id_of_128_characters_names_it() -> None:
    assert _key(tombstone(b"g" * 128)) == "g" * 128


@pytest.mark.parametrize(
    ("key", "rule"),
    [
        (b"", "at least 1 character"),
        (b"g" * 129, "at most 128 characters"),
        (b"guardian\x009", "NUL"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_a_tombstone_whose_key_is_no_id_is_rejected_with_the_rule(key: bytes, rule: str) -> None:
    with pytest.raises(RequestRejected) as rejected:
        _key(tombstone(key))

    assert rejected.value.code is RejectionCode.SCHEMA_ERROR
    assert rule in rejected.value.detail

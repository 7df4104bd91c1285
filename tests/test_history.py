"""A delivery's history: its claim and its send read off its row, merged with the events
kept beside it, none twice (domain.history)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from notifier.domain.history import delivery_history, is_told_by_row
from notifier.domain.model import Channel, DeliveryStatus, Reason
from notifier.domain.records import StoredEvent
from tests.builders import delivery_record

CLAIMED = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
SENT = CLAIMED + timedelta(milliseconds=80)
DELIVERED = CLAIMED + timedelta(seconds=4)


def statuses(history: list[StoredEvent]) -> list[tuple[DeliveryStatus, datetime]]:
    return [(event.status, event.occurred_at) for event in history]


def test_a_text_is_queued_at_its_claim_and_sent_when_its_row_says() -> None:
    record = delivery_record(
        status=DeliveryStatus.DELIVERED, provider="twilio", created_at=CLAIMED, sent_at=SENT
    )
    delivered = StoredEvent(DeliveryStatus.DELIVERED, None, None, DELIVERED)

    history = delivery_history(record, [delivered])

    assert statuses(history) == [
        (DeliveryStatus.QUEUED, CLAIMED),
        (DeliveryStatus.SENT, SENT),
        (DeliveryStatus.DELIVERED, DELIVERED),
    ]
    assert history[1].provider == "twilio"
    assert history[0].provider is None


def test_a_text_the_provider_refused_was_never_sent() -> None:
    record = delivery_record(
        status=DeliveryStatus.FAILED, reason=Reason.INVALID_ADDRESS, created_at=CLAIMED
    )
    failed = StoredEvent(DeliveryStatus.FAILED, Reason.INVALID_ADDRESS, "twilio", SENT)

    assert statuses(delivery_history(record, [failed])) == [
        (DeliveryStatus.QUEUED, CLAIMED),
        (DeliveryStatus.FAILED, SENT),
    ]


def test_an_inbox_copy_is_one_event_sent_at_its_claim() -> None:
    record = delivery_record(
        channel=Channel.APP,
        address=None,
        status=DeliveryStatus.SENT,
        provider="app-inbox",
        created_at=CLAIMED,
        sent_at=CLAIMED,
    )

    (event,) = delivery_history(record, [])

    assert (event.status, event.provider, event.occurred_at) == (
        DeliveryStatus.SENT,
        "app-inbox",
        CLAIMED,
    )


def test_a_delivery_not_made_keeps_its_status_and_reason_from_the_claim() -> None:
    record = delivery_record(
        status=DeliveryStatus.SUPPRESSED, reason=Reason.OPTED_OUT, created_at=CLAIMED
    )

    (event,) = delivery_history(record, [])

    assert (event.status, event.reason, event.occurred_at) == (
        DeliveryStatus.SUPPRESSED,
        Reason.OPTED_OUT,
        CLAIMED,
    )


def test_events_kept_before_the_rule_are_not_read_twice() -> None:
    record = delivery_record(
        status=DeliveryStatus.SENT, provider="twilio", created_at=CLAIMED, sent_at=SENT
    )
    kept = [
        StoredEvent(DeliveryStatus.QUEUED, None, None, CLAIMED),
        StoredEvent(DeliveryStatus.SENT, None, "twilio", SENT),
    ]

    assert delivery_history(record, kept) == kept


def test_with_a_stopped_clock_the_claim_still_comes_first() -> None:
    # A test clock that never moves: the refusal kept at the claim's own moment is no
    # claim, and follows it.
    record = delivery_record(status=DeliveryStatus.FAILED, created_at=CLAIMED)
    failed = StoredEvent(DeliveryStatus.FAILED, Reason.PROVIDER_ERROR, "twilio", CLAIMED)

    assert statuses(delivery_history(record, [failed])) == [
        (DeliveryStatus.QUEUED, CLAIMED),
        (DeliveryStatus.FAILED, CLAIMED),
    ]


def test_only_a_send_is_told_by_the_row() -> None:
    assert [status for status in DeliveryStatus if is_told_by_row(status)] == [DeliveryStatus.SENT]

"""A delivery's history: what its ledger row already says, and the events kept beside it.

Two events of every delivery are facts of its row, and are not written again as events: its
claim (the row's ``created_at``: queued to send; for an inbox copy, sent, the copy being
written with its claim; for one decided not to be made, suppressed or skipped with the
row's reason, which nothing changes afterwards) and its send (``sent_at``, by the row's
provider). What the row cannot hold — the provider's later reports, failures, deferrals —
is kept as events. On the delivery path that is two event inserts fewer for each text or
email (its claim, its send) and one for each inbox copy: the row was written anyway.

Events kept before this rule (a stored claim or send) are not read twice: the one read off
the row gives way to the kept one.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from notifier.domain.model import Channel, DeliveryStatus
from notifier.domain.records import DeliveryRecord, StoredEvent

NOT_MADE = frozenset({DeliveryStatus.SUPPRESSED, DeliveryStatus.SKIPPED})
"""Statuses a delivery has only from its claim, and keeps: nothing was sent."""


def is_told_by_row(status: DeliveryStatus) -> bool:
    """Whether an outcome with ``status`` is already a fact of the delivery's row once
    applied (a send: ``sent_at`` and the provider), so it need not be kept as an event."""
    return status is DeliveryStatus.SENT


def delivery_history(record: DeliveryRecord, kept: Iterable[StoredEvent]) -> list[StoredEvent]:
    """The delivery's events in the order they happened: its claim and its send read off
    ``record`` (as the ledger holds it: ``created_at`` set), merged with those ``kept``."""
    kept = list(kept)
    read_off_row = []
    if record.created_at is not None:
        claim = _claim(record, record.created_at)
        if not any(
            event.status is claim.status and event.occurred_at == claim.occurred_at
            for event in kept
        ):
            read_off_row.append(claim)
    if (
        record.sent_at is not None
        and record.channel is not Channel.APP
        and not any(event.status is DeliveryStatus.SENT for event in kept)
    ):
        read_off_row.append(StoredEvent(DeliveryStatus.SENT, None, record.provider, record.sent_at))
    # Stable: a claim read off the row stays before what was kept at the same moment.
    return sorted([*read_off_row, *kept], key=lambda event: event.occurred_at)


def _claim(record: DeliveryRecord, at: datetime) -> StoredEvent:
    if record.status in NOT_MADE:
        return StoredEvent(record.status, record.reason, None, at)
    if record.channel is Channel.APP:
        # The inbox copy, written in its claim's transaction: sent at once.
        return StoredEvent(DeliveryStatus.SENT, None, record.provider, at)
    return StoredEvent(DeliveryStatus.QUEUED, None, None, at)

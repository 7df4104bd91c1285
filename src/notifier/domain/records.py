"""What the store keeps and gives back: a delivery as the ledger holds it, the outcome of
claiming one, its history, audit entries, API tokens as kept, and what a send request reads
from the directory. Plain values, so use cases, ports and adapters share them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import NamedTuple

from notifier.domain.model import (
    Channel,
    ContactPoint,
    ConversationState,
    DeliveryStatus,
    District,
    Reason,
    Recipient,
    Route,
)
from notifier.domain.values import value_type


@value_type
class DeliveryRecord:
    """A delivery as the ledger holds it: one per (message, recipient, channel)."""

    delivery_id: str
    request_id: str
    message_id: str
    conversation_id: str
    recipient_id: str
    channel: Channel
    address: str | None
    status: DeliveryStatus
    reason: Reason | None
    route: Route | None
    fallback_from: Channel | None
    language: str | None
    provider: str | None = None
    provider_message_id: str | None = None
    district_id: str | None = None
    sent_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    attempts: int = 1
    """Sends started; above 1, an earlier attempt died with its outcome unknown."""


@value_type
class AuditEntry:
    """Who changed what and why; never deleted by the service."""

    occurred_at: datetime
    actor: str
    scope: str
    action: str
    channel: Channel | None
    address: str | None
    note: str | None
    request_id: str | None
    outcome: str | None = None


@value_type
class StoredEvent:
    """One state change in a delivery's history."""

    status: DeliveryStatus
    reason: Reason | None
    provider: str | None
    occurred_at: datetime


@value_type
class StoredToken:
    """An API token as kept: its SHA-256 only."""

    name: str
    scope: str
    sha256: str
    recipient_id: str | None
    created_at: datetime


@value_type
class Claim:
    """The outcome of claiming a delivery: ``is_new`` is False when it was already recorded
    (a redelivered or duplicated request), with the status it had."""

    record: DeliveryRecord
    is_new: bool


@value_type
class RequestContext:
    """What a send request needs from the directory, read together: its district (None when
    unknown, and then nothing else is read), the recipients found, their addresses' recorded
    statuses, and the conversation's state."""

    district: District | None
    profiles: Mapping[str, Recipient]
    points: Mapping[tuple[Channel, str], ContactPoint]
    conversation: ConversationState | None


class ContextQuery(NamedTuple):
    """What one send request reads from the directory (see ``RequestContext``)."""

    district_id: str
    recipient_ids: tuple[str, ...]
    conversation_id: str

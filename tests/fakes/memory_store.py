"""The store's ports in memory (STYLE: fakes, not mocks): what the use cases' tests run on when
they are about the use case, not the SQL. The SQL adapters themselves are tested on SQLite and
PostgreSQL (tests/test_store.py); these follow the same rules, in dicts.

``MemoryStorage`` has the attributes of ``notifier.adapters.store.Storage``, so a test reads
``store.directory`` or ``store.ledger`` the same way on either."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from notifier.domain.history import delivery_history, is_told_by_row
from notifier.domain.model import (
    Channel,
    ContactPoint,
    ContactStatus,
    ConversationState,
    DeliveryEvent,
    DeliveryStatus,
    District,
    OutboundMessage,
    Recipient,
    SendRequest,
)
from notifier.domain.records import (
    AuditEntry,
    Claim,
    ContextQuery,
    DeliveryRecord,
    RequestContext,
    StoredEvent,
    StoredToken,
)
from notifier.ports import Clock, UnknownDeliveryError

Key = tuple[Channel, str]
OPEN = (DeliveryStatus.SENT, DeliveryStatus.DEFERRED)


@dataclass
class MemoryContactPoints:
    clock: Clock
    points: dict[Key, ContactPoint] = field(default_factory=dict)
    resume_link_sent: set[str] = field(default_factory=set)
    """Email addresses whose fallback text carried the resume link, this failing period."""

    async def contact_points(self, keys: Iterable[Key]) -> Mapping[Key, ContactPoint]:
        return {key: self.points[key] for key in keys if key in self.points}

    async def set_contact_point(self, point: ContactPoint) -> None:
        strikes = self.points[point.channel, point.address].strikes if self._known(point) else 0
        if point.status is ContactStatus.ACTIVE:
            strikes = 0
            self.resume_link_sent.discard(point.address)
        self.points[point.channel, point.address] = replace(point, strikes=strikes)

    async def add_strike(self, channel: Channel, address: str) -> int:
        self.add_active((channel, address))
        point = self.points[channel, address]
        self.points[channel, address] = replace(point, strikes=point.strikes + 1)
        return point.strikes + 1

    async def mark_resume_link_sent(self, address: str) -> bool:
        if (Channel.EMAIL, address) not in self.points or address in self.resume_link_sent:
            return False
        self.resume_link_sent.add(address)
        return True

    async def contact_point_counts(self) -> dict[tuple[Channel, ContactStatus], int]:
        counts: dict[tuple[Channel, ContactStatus], int] = {}
        for point in self.points.values():
            counts[point.channel, point.status] = counts.get((point.channel, point.status), 0) + 1
        return counts

    def add_active(self, key: Key) -> None:
        """An address first seen is active; a known one keeps its status."""
        self.points.setdefault(key, ContactPoint(key[0], key[1], ContactStatus.ACTIVE, None, None))

    def _known(self, point: ContactPoint) -> bool:
        return (point.channel, point.address) in self.points


@dataclass
class MemoryDirectory:
    """Directory and DirectoryUpdates."""

    contact_points: MemoryContactPoints
    districts: dict[str, District] = field(default_factory=dict)
    people: dict[str, Recipient] = field(default_factory=dict)
    states: dict[str, ConversationState] = field(default_factory=dict)

    async def district(self, district_id: str) -> District | None:
        return self.districts.get(district_id)

    async def recipients(self, recipient_ids: Iterable[str]) -> Mapping[str, Recipient]:
        return {rid: self.people[rid] for rid in recipient_ids if rid in self.people}

    async def conversation_state(self, conversation_id: str) -> ConversationState | None:
        return self.states.get(conversation_id)

    async def request_contexts(self, queries: Sequence[ContextQuery]) -> list[RequestContext]:
        known = [q for q in queries if q.district_id in self.districts]
        profiles = await self.recipients(rid for q in known for rid in q.recipient_ids)
        points = await self.contact_points.contact_points(
            key for profile in profiles.values() for key in _addresses(profile)
        )
        return [
            RequestContext(
                self.districts[q.district_id],
                {rid: profiles[rid] for rid in q.recipient_ids if rid in profiles},
                points,
                self.states.get(q.conversation_id),
            )
            if q in known
            else RequestContext(None, {}, {}, None)
            for q in queries
        ]

    async def recipients_using(self, channel: Channel, address: str) -> list[Recipient]:
        return sorted(
            (p for p in self.people.values() if p.address_for(channel) == address),
            key=lambda p: p.id,
        )

    async def search_recipients(self, text: str, *, limit: int = 25) -> list[Recipient]:
        text = text.strip()
        if not text:
            return []
        part = text.replace("\\", "").replace("%", "").replace("_", "").lower()
        found = [
            p
            for p in self.people.values()
            if text in (p.id, p.phone) or p.email == text.lower() or part in p.display_name.lower()
        ]
        return sorted(found, key=lambda p: (p.display_name, p.id))[:limit]

    async def upsert_recipient(self, recipient: Recipient) -> bool:
        stored = self.people.get(recipient.id)
        if stored is not None and stored.updated_at >= recipient.updated_at:
            return False
        self.people[recipient.id] = recipient
        for key in _addresses(recipient):
            self.contact_points.add_active(key)
        return True

    async def delete_recipient(self, recipient_id: str) -> bool:
        return self.people.pop(recipient_id, None) is not None

    async def upsert_district(self, district: District) -> None:
        self.districts[district.id] = district

    async def delete_district(self, district_id: str) -> bool:
        return self.districts.pop(district_id, None) is not None

    async def upsert_conversation_state(self, state: ConversationState) -> bool:
        stored = self.states.get(state.conversation_id)
        if stored is not None and stored.updated_at >= state.updated_at:
            return False
        self.states[state.conversation_id] = state
        return True

    async def delete_conversation_state(self, conversation_id: str) -> bool:
        return self.states.pop(conversation_id, None) is not None


@dataclass
class MemoryInbox:
    clock: Clock
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)

    async def write_inbox(self, message: OutboundMessage) -> str:
        taken = {(e["recipient_id"], e["message_id"]) for e in self.entries.values()}
        if (message.recipient_id, message.message_id) not in taken:
            self.entries.setdefault(
                message.delivery_id,
                {
                    "entry_id": message.delivery_id,
                    "recipient_id": message.recipient_id,
                    "message_id": message.message_id,
                    "conversation_id": message.conversation_id,
                    "sender_name": message.sender_name or "",
                    "body": message.inbox_body or "",
                    "language": message.language,
                    "created_at": self.clock.now(),
                    "read_at": None,
                },
            )
        return message.delivery_id

    async def inbox(self, recipient_id: str) -> list[Mapping[str, Any]]:
        mine = [e for e in self.entries.values() if e["recipient_id"] == recipient_id]
        return sorted(mine, key=lambda e: e["created_at"])


@dataclass
class MemoryLedger:
    """DeliveryLedger and DeliveryHistory."""

    clock: Clock
    inbox: MemoryInbox
    deliveries: dict[str, DeliveryRecord] = field(default_factory=dict)
    events: dict[str, tuple[str, StoredEvent]] = field(default_factory=dict)
    """By event id: the delivery's id and the event."""
    sms_costs: dict[str, tuple[int, str]] = field(default_factory=dict)

    async def claim_delivery(
        self, record: DeliveryRecord, *, inbox_copy: OutboundMessage | None = None
    ) -> Claim:
        triple = (record.message_id, record.recipient_id, record.channel)
        earlier = next(
            (
                d
                for d in self.deliveries.values()
                if (d.message_id, d.recipient_id, d.channel) == triple
            ),
            None,
        )
        if earlier is not None:
            if earlier.status is DeliveryStatus.QUEUED:
                earlier = replace(earlier, attempts=earlier.attempts + 1)
                self.deliveries[earlier.delivery_id] = earlier
            return Claim(earlier, is_new=False)
        now = self.clock.now()
        self.deliveries[record.delivery_id] = replace(
            record, created_at=now, updated_at=now, attempts=1
        )
        # Its claim is a fact of the row, as in the SQL ledger (domain.history).
        if inbox_copy is not None:
            await self.inbox.write_inbox(inbox_copy)
        return Claim(record, is_new=True)

    async def claim_deliveries(
        self, claims: Sequence[tuple[DeliveryRecord, OutboundMessage | None]]
    ) -> list[Claim]:
        return [await self.claim_delivery(record, inbox_copy=copy) for record, copy in claims]

    async def record_event(
        self, event: DeliveryEvent, *, sms_cost: tuple[int, str] | None = None
    ) -> None:
        stored = self.deliveries.get(event.delivery_id)
        if stored is None:
            raise UnknownDeliveryError(f"outcome of no claimed delivery {event.delivery_id}")
        self.deliveries[event.delivery_id] = replace(
            stored,
            status=event.status,
            reason=event.reason,
            updated_at=event.occurred_at,
            provider=event.provider or stored.provider,
            provider_message_id=event.provider_message_id or stored.provider_message_id,
            sent_at=event.occurred_at if event.status is DeliveryStatus.SENT else stored.sent_at,
        )
        if sms_cost is not None:
            self.sms_costs[event.delivery_id] = sms_cost
        if not is_told_by_row(event.status):
            self._keep(
                event.event_id,
                event.delivery_id,
                StoredEvent(event.status, event.reason, event.provider, event.occurred_at),
            )

    async def delivery(self, delivery_id: str) -> DeliveryRecord | None:
        return self.deliveries.get(delivery_id)

    async def deliveries_by_provider_id(
        self, channel: Channel, provider_message_id: str
    ) -> list[DeliveryRecord]:
        return self._where(
            lambda d: d.channel is channel and d.provider_message_id == provider_message_id,
            order=lambda d: d.recipient_id,
        )

    async def deliveries_of_message(
        self, message_id: str, *, limit: int = 1000, offset: int = 0
    ) -> list[DeliveryRecord]:
        found = self._where(
            lambda d: d.message_id == message_id, order=lambda d: (d.recipient_id, d.channel)
        )
        return found[offset : offset + limit]

    async def latest_delivery_to(
        self, channel: Channel, address: str, not_after: datetime
    ) -> DeliveryRecord | None:
        sent = self._sent_to(channel, address, lambda at: at <= not_after)
        return sent[-1] if sent else None

    async def conversation_deliveries_to(
        self,
        channel: Channel,
        address: str,
        conversation_id: str,
        sent_between: tuple[datetime, datetime],
    ) -> list[DeliveryRecord]:
        start, end = sent_between
        sent = self._sent_to(channel, address, lambda at: start <= at <= end)
        return [d for d in sent if d.conversation_id == conversation_id]

    async def open_deliveries_to(
        self, message_id: str, channel: Channel, address: str
    ) -> list[DeliveryRecord]:
        return self._where(
            lambda d: (
                (d.message_id, d.channel, d.address) == (message_id, channel, address)
                and d.status in OPEN
            )
        )

    async def overdue_deliveries(
        self, channel: Channel, status: DeliveryStatus, sent_before: datetime, limit: int = 500
    ) -> list[DeliveryRecord]:
        sent = [
            d for d in self._sent_on(channel, lambda at: at < sent_before) if d.status is status
        ]
        return sent[:limit]

    async def recent_deliveries(
        self,
        *,
        recipient_id: str | None = None,
        channel: Channel | None = None,
        address: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[DeliveryRecord]:
        def wanted(d: DeliveryRecord) -> bool:
            by_address = (
                channel is None
                or address is None
                or (d.channel, d.address)
                == (
                    channel,
                    address,
                )
            )
            return (recipient_id is None or d.recipient_id == recipient_id) and by_address

        # Newest first; the delivery id breaks ties, as the SQL does.
        found = sorted(self._where(wanted), key=lambda d: d.delivery_id)
        found.sort(key=lambda d: d.created_at or datetime.min, reverse=True)
        return found[offset : offset + limit]

    async def event_history(
        self, records: Iterable[DeliveryRecord]
    ) -> dict[str, list[StoredEvent]]:
        by_id = {record.delivery_id: record for record in records}
        kept: dict[str, list[StoredEvent]] = {delivery_id: [] for delivery_id in by_id}
        for _, (delivery_id, event) in sorted(
            self.events.items(), key=lambda item: (item[1][1].occurred_at, item[0])
        ):
            if delivery_id in kept:
                kept[delivery_id].append(event)
        return {
            delivery_id: delivery_history(record, kept[delivery_id])
            for delivery_id, record in by_id.items()
        }

    def _keep(self, event_id: str, delivery_id: str, event: StoredEvent) -> None:
        self.events.setdefault(event_id, (delivery_id, event))

    def _where(self, wanted: Any, order: Any = None) -> list[DeliveryRecord]:
        found = [d for d in self.deliveries.values() if wanted(d)]
        return found if order is None else sorted(found, key=order)

    def _sent_on(self, channel: Channel, when: Any) -> list[DeliveryRecord]:
        """Oldest first, by the time they were sent."""
        return self._where(
            lambda d: d.channel is channel and d.sent_at is not None and when(d.sent_at),
            order=lambda d: d.sent_at,
        )

    def _sent_to(self, channel: Channel, address: str, when: Any) -> list[DeliveryRecord]:
        return [d for d in self._sent_on(channel, when) if d.address == address]


@dataclass
class MemorySentRequests:
    requests: dict[str, SendRequest] = field(default_factory=dict)

    async def save_requests(self, requests: Sequence[SendRequest]) -> None:
        for request in requests:
            self.requests.setdefault(request.message_id, request)

    async def load_request(self, message_id: str) -> SendRequest | None:
        return self.requests.get(message_id)


@dataclass
class MemoryTranslationCache:
    texts: dict[tuple[str, str], str] = field(default_factory=dict)

    async def cached_translation(self, message_id: str, language: str) -> str | None:
        return self.texts.get((message_id, language))

    async def save_translation(
        self, message_id: str, language: str, text: str, provider: str
    ) -> None:
        self.texts.setdefault((message_id, language), text)


@dataclass
class MemoryProviderEvents:
    seen: set[tuple[str, str]] = field(default_factory=set)

    async def provider_event_seen(self, provider: str, event_key: str) -> bool:
        return (provider, event_key) in self.seen

    async def remember_provider_event(self, provider: str, event_key: str) -> None:
        self.seen.add((provider, event_key))


@dataclass
class MemoryAuditLog:
    entries: list[AuditEntry] = field(default_factory=list)

    async def append_audit(self, entry: AuditEntry) -> None:
        self.entries.append(entry)

    async def audit_entries(
        self, limit: int = 100, offset: int = 0, *, address: str | None = None
    ) -> list[AuditEntry]:
        newest_first = [e for e in reversed(self.entries) if address in (None, e.address)]
        return newest_first[offset : offset + limit]


@dataclass
class MemoryTokenStore:
    tokens: dict[str, StoredToken] = field(default_factory=dict)

    async def add_api_token(self, token: StoredToken) -> None:
        self.tokens[token.sha256] = token

    async def api_token(self, sha256: str) -> StoredToken | None:
        return self.tokens.get(sha256)


class AlwaysUp:
    """DatabaseHealth of a store that can't go away or refuse a value."""

    def refuses_data(self, error: BaseException) -> bool:
        return False

    async def ping(self) -> None:
        return None


class MemoryStorage:
    def __init__(self, clock: Clock) -> None:
        self.database = AlwaysUp()
        self.contact_points = MemoryContactPoints(clock)
        self.directory = MemoryDirectory(self.contact_points)
        self.inbox = MemoryInbox(clock)
        self.ledger = MemoryLedger(clock, self.inbox)
        self.requests = MemorySentRequests()
        self.translations = MemoryTranslationCache()
        self.provider_events = MemoryProviderEvents()
        self.audit = MemoryAuditLog()
        self.tokens = MemoryTokenStore()


def _addresses(recipient: Recipient) -> list[Key]:
    return [
        (channel, address)
        for channel, address in ((Channel.SMS, recipient.phone), (Channel.EMAIL, recipient.email))
        if address
    ]


def delivery_ports(store: Any) -> dict[str, Any]:
    """``DeliveryDependencies``' store ports, from a ``Storage`` or a ``MemoryStorage``."""
    return {
        "directory": store.directory,
        "ledger": store.ledger,
        "requests": store.requests,
        "contact_points": store.contact_points,
        "inbox": store.inbox,
        "translations": store.translations,
    }

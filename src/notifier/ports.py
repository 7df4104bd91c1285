"""The small interfaces the use cases depend on, and the typed errors adapters raise.

Adapters implement these (see notifier.adapters); tests use in-memory fakes of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Protocol

from notifier.domain.lifecycle import ProviderReport
from notifier.domain.model import (
    Channel,
    ContactPoint,
    ContactStatus,
    ConversationState,
    DeliveryEvent,
    DeliveryStatus,
    District,
    OutboundMessage,
    Reason,
    Recipient,
    Reply,
    ReplyAttachment,
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
from notifier.domain.rendering import Phrasebook
from notifier.domain.values import value_type


class UnknownDeliveryError(LookupError):
    """An outcome recorded for a delivery the ledger has never claimed: a fault upstream,
    refused alone (the outcomes recorded with it are kept)."""


class ProviderError(Exception):
    """A provider did not accept a message. Subclasses say what to do about it."""

    def __init__(self, provider: str, detail: str, *, code: str | None = None) -> None:
        super().__init__(f"{provider}: {detail}")
        self.provider = provider
        self.detail = detail
        self.code = code


class TransientProviderError(ProviderError):
    """Worth retrying: connection trouble, a timeout, HTTP 5xx, or 429 (``retry_after`` s)."""

    def __init__(
        self,
        provider: str,
        detail: str,
        *,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(provider, detail, code=code)
        self.retry_after = retry_after


class PermanentProviderError(ProviderError):
    """Retrying the same message to the same address cannot succeed (e.g. invalid number)."""

    def __init__(
        self,
        provider: str,
        detail: str,
        *,
        reason: Reason,
        code: str | None = None,
    ) -> None:
        super().__init__(provider, detail, code=code)
        self.reason = reason


class UnknownOutcomeError(ProviderError):
    """The request may or may not have been accepted (e.g. the connection dropped after the
    body was sent). Retrying risks a duplicate; not retrying risks a lost message."""


class ProviderUnavailableError(ProviderError):
    """Not tried: the provider's circuit is open after it kept failing. The message fails
    over at once instead of waiting out retries."""


class SendPacer(Protocol):
    """A provider's rate limit as seen from our side: waits (in order) until the next
    message may go, instead of letting the provider refuse it."""

    async def wait_turn(self, message: OutboundMessage) -> None: ...


class WebhookRejected(Exception):
    """A webhook request is not proven to come from the provider (a signature or timestamp
    header missing, malformed, stale or not matching): answer 403 and change nothing.
    ``reason`` says which check failed, for the log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@value_type
class InboundText:
    """A text someone sent to one of our numbers: a keyword (STOP, START, HELP) or a reply."""

    message_sid: str
    sender: str
    """The person's phone number."""
    to: str | None
    """Our number that received it."""
    body: str
    """As sent, untrimmed; empty for a message with only media."""


class EmailEventsWebhook(Protocol):
    """The email provider's event webhook: verified, then read as provider reports."""

    def reports(
        self, body: bytes, headers: Mapping[str, str], now: datetime
    ) -> list[ProviderReport]:
        """Raises ``WebhookRejected`` (answer 403) or ``ValueError`` (malformed, 400).
        ``headers`` are the request's, looked up case-insensitively."""
        ...


class SmsWebhooks(Protocol):
    """The SMS provider's status callbacks and inbound texts, verified against the URL the
    provider called (configured, since the service runs behind a proxy)."""

    def status_report(
        self, url: str, form: Mapping[str, str], headers: Mapping[str, str], now: datetime
    ) -> ProviderReport: ...

    def inbound_text(
        self, url: str, form: Mapping[str, str], headers: Mapping[str, str]
    ) -> InboundText: ...


@value_type
class InboundEmail:
    """An email someone sent to one of our reply addresses, as the provider parsed it."""

    message_id: str
    """The email's Message-ID (or, lacking one, a digest of it): the same on every retry."""
    sender: str
    """The address it came from, lower-cased."""
    reply_addresses: tuple[str, ...]
    """Every address it was sent to (envelope and headers); one of them should be ours."""
    subject: str
    text: str
    """The plain-text body with its quoted history, as sent."""
    attachments: tuple[ReplyAttachment, ...] = ()


class EmailInbound(Protocol):
    """The email provider's inbound webhook (SendGrid Inbound Parse). It is not signed, so
    the adapter checks the credentials the provider was configured to present."""

    def authenticate(self, headers: Mapping[str, str], path_secret: str | None) -> None:
        """Raises ``WebhookRejected`` unless the request carries the configured secret, in
        its path (``path_secret``) or its headers."""
        ...

    def inbound_email(
        self, fields: Mapping[str, str], attachments: Sequence[ReplyAttachment]
    ) -> InboundEmail:
        """Raises ``ValueError`` for a form that is not an inbound email (400)."""
        ...


class ReplyTextReader(Protocol):
    """Separates what a person wrote in an email reply from the quoted history and their
    signature beneath it."""

    def new_text(self, body: str) -> str: ...


class LanguageDetector(Protocol):
    """Tells the language of a short text, offline; None when it can't say with confidence."""

    def detect(self, text: str) -> str | None: ...


@value_type
class ProviderReceipt:
    provider: str
    provider_message_id: str | None


class ChannelSender(Protocol):
    """Sends one rendered message on one channel (Twilio, SendGrid, the app inbox, a sandbox)."""

    @property
    def provider(self) -> str: ...

    async def send(self, message: OutboundMessage) -> ProviderReceipt: ...


class SentMessageLookup(Protocol):
    """Asks a provider whether it already took a message, for a delivery whose earlier
    attempt died with its outcome unknown: found, it is recorded instead of sent again."""

    @property
    def provider(self) -> str: ...

    async def find_sent(self, message: OutboundMessage, since: datetime) -> ProviderReceipt | None:
        """The provider's receipt for ``message`` (same recipient and text) taken at or
        after ``since``; None when it has none. Raises ProviderError when it can't tell."""
        ...


# The store, one port per aggregate: a use case names the few it reads and writes, and a test
# fake of each is a few lines (tests/fakes/memory_store.py). One SQL adapter module stands
# behind each (adapters/sql/), all on one database.


class Directory(Protocol):
    """The directory read model: districts, recipients and conversations' states, as the
    directory topics last said."""

    async def district(self, district_id: str) -> District | None: ...

    async def recipients(self, recipient_ids: Iterable[str]) -> Mapping[str, Recipient]: ...

    async def conversation_state(self, conversation_id: str) -> ConversationState | None: ...

    async def request_contexts(self, queries: Sequence[ContextQuery]) -> list[RequestContext]:
        """Each query's context, in their order, read together."""
        ...

    async def recipients_using(self, channel: Channel, address: str) -> list[Recipient]: ...

    async def search_recipients(self, text: str, *, limit: int = 25) -> list[Recipient]:
        """By id, email or phone exactly, or by a part of the name (any case)."""
        ...


class DirectoryUpdates(Protocol):
    """The directory topics applied: events may come out of order and more than once."""

    async def upsert_recipient(self, recipient: Recipient) -> bool:
        """Store the profile unless a newer one is stored; True when it was applied."""
        ...

    async def delete_recipient(self, recipient_id: str) -> bool: ...

    async def upsert_district(self, district: District) -> None: ...

    async def delete_district(self, district_id: str) -> bool: ...

    async def upsert_conversation_state(self, state: ConversationState) -> bool:
        """Stored unless a newer state is; True when it was applied."""
        ...

    async def delete_conversation_state(self, conversation_id: str) -> bool: ...


class DeliveryLedger(Protocol):
    """Deliveries claimed and moved through their statuses, and found again by identity."""

    async def claim_delivery(
        self, record: DeliveryRecord, *, inbox_copy: OutboundMessage | None = None
    ) -> Claim:
        """Insert the delivery unless one exists for its (message, recipient, channel);
        with ``inbox_copy``, a new claim writes that app inbox entry in the same
        transaction (an inbox copy is one row and one event, recorded as sent)."""
        ...

    async def claim_deliveries(
        self, claims: Sequence[tuple[DeliveryRecord, OutboundMessage | None]]
    ) -> list[Claim]:
        """``claim_delivery`` of each (record, inbox copy), the claims in order."""
        ...

    async def record_event(
        self, event: DeliveryEvent, *, sms_cost: tuple[int, str] | None = None
    ) -> None:
        """Move the delivery to the event's status and keep the event in its history;
        ``sms_cost`` (segments, encoding) is what the text it sent is billed as."""
        ...

    async def delivery(self, delivery_id: str) -> DeliveryRecord | None: ...

    async def deliveries_by_provider_id(
        self, channel: Channel, provider_message_id: str
    ) -> list[DeliveryRecord]:
        """Several when one text went to a phone that several recipients share."""
        ...

    async def deliveries_of_message(
        self, message_id: str, *, limit: int = 1000, offset: int = 0
    ) -> list[DeliveryRecord]: ...


class DeliveryHistory(Protocol):
    """Deliveries found by address and time, and their events: what replies are matched
    against, what the timer sweeps and what support reads."""

    async def latest_delivery_to(
        self, channel: Channel, address: str, not_after: datetime
    ) -> DeliveryRecord | None:
        """The last delivery sent to the address no later than the given time."""
        ...

    async def conversation_deliveries_to(
        self,
        channel: Channel,
        address: str,
        conversation_id: str,
        sent_between: tuple[datetime, datetime],
    ) -> list[DeliveryRecord]:
        """The conversation's deliveries sent to the address within the (inclusive) span:
        everyone a reply from that phone may be from."""
        ...

    async def open_deliveries_to(
        self, message_id: str, channel: Channel, address: str
    ) -> list[DeliveryRecord]:
        """The message's deliveries to one address still waiting for a final status."""
        ...

    async def overdue_deliveries(
        self, channel: Channel, status: DeliveryStatus, sent_before: datetime, limit: int = 500
    ) -> list[DeliveryRecord]:
        """Oldest first."""
        ...

    async def recent_deliveries(
        self,
        *,
        recipient_id: str | None = None,
        channel: Channel | None = None,
        address: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[DeliveryRecord]:
        """Newest first, for one recipient and/or one address."""
        ...

    async def event_history(
        self, records: Iterable[DeliveryRecord]
    ) -> dict[str, list[StoredEvent]]:
        """Each delivery's events, oldest first, by delivery id: ``records`` as the ledger
        holds them, their claims and sends read off them (``domain.history``)."""
        ...


class SentRequests(Protocol):
    """Send requests kept (the first of each message), so a later failover can send the same
    message again."""

    async def save_requests(self, requests: Sequence[SendRequest]) -> None: ...

    async def load_request(self, message_id: str) -> SendRequest | None: ...


class ContactPoints(Protocol):
    """Each address's recorded status: failing, opted out, or active again."""

    async def contact_points(
        self, keys: Iterable[tuple[Channel, str]]
    ) -> Mapping[tuple[Channel, str], ContactPoint]: ...

    async def set_contact_point(self, point: ContactPoint) -> None:
        """Record an address's status; back to active, its strikes and resume link reset."""
        ...

    async def add_strike(self, channel: Channel, address: str) -> int:
        """Count one more failure against the address; returns the new count."""
        ...

    async def mark_resume_link_sent(self, address: str) -> bool:
        """True the first time for this failing period: only the first fallback SMS carries
        the resume link."""
        ...

    async def contact_point_counts(self) -> dict[tuple[Channel, ContactStatus], int]: ...


class Inbox(Protocol):
    """The recipients' app inbox."""

    async def write_inbox(self, message: OutboundMessage) -> str:
        """Put the message in the recipient's app inbox (idempotent); returns the entry id."""
        ...


class TranslationCache(Protocol):
    """Machine translations kept per message and language: each is paid for once."""

    async def cached_translation(self, message_id: str, language: str) -> str | None: ...

    async def save_translation(
        self, message_id: str, language: str, text: str, provider: str
    ) -> None: ...


class ProviderEvents(Protocol):
    """Provider events already processed (webhook retries, inbound messages), by key."""

    async def provider_event_seen(self, provider: str, event_key: str) -> bool: ...

    async def remember_provider_event(self, provider: str, event_key: str) -> None: ...


class AuditLog(Protocol):
    async def append_audit(self, entry: AuditEntry) -> None: ...

    async def audit_entries(
        self, limit: int = 100, offset: int = 0, *, address: str | None = None
    ) -> list[AuditEntry]:
        """Newest first."""
        ...


class TokenStore(Protocol):
    """API tokens created with ``notifier tokens create``, kept as their hashes."""

    async def add_api_token(self, token: StoredToken) -> None: ...

    async def api_token(self, sha256: str) -> StoredToken | None:
        """The unrevoked token with this hash."""
        ...


class DatabaseHealth(Protocol):
    """What the edges ask of the database behind every store port."""

    def refuses_data(self, error: BaseException) -> bool:
        """True when ``error`` is the database refusing a value of this input (text holding
        U+0000 on PostgreSQL, a string longer than its column): retrying can't help, unlike
        an outage, so the input is refused instead."""
        ...

    async def ping(self) -> None:
        """Raise when the database cannot be reached."""
        ...


class EventPublisher(Protocol):
    async def publish(self, events: Sequence[DeliveryEvent]) -> None: ...


class ReplyPublisher(Protocol):
    async def publish(self, reply: Reply) -> None: ...


class Translator(Protocol):
    """Machine translation of a message body (plain text). Languages are notifier's tags
    (es, zh-Hant, pt); each adapter maps them to its vendor's codes and bounds every call by
    its own timeout."""

    @property
    def provider(self) -> str: ...

    async def translate(self, text: str, *, source: str, target: str) -> str:
        """Raises TransientProviderError or PermanentProviderError; either way the caller
        sends the original with the localized note."""
        ...

    def close(self) -> None: ...


class Suppressions(Protocol):
    """A provider's own block list for an address (SendGrid drops mail to bounced addresses
    until they are removed from its list)."""

    async def remove(self, address: str) -> None: ...


@value_type
class Principal:
    """Who is calling the API, as a verified bearer token says."""

    name: str
    """Recorded in the audit log: a token's name, or an OIDC subject (and email)."""
    scope: str
    """support, self-service or admin."""
    recipient_id: str | None = None
    """The one recipient a self-service principal acts for."""


class BearerVerifier(Protocol):
    """One way of accepting bearer tokens (static tokens, OIDC-issued JWTs)."""

    async def principal(self, token: str) -> Principal | None:
        """The principal the token proves, or None when this verifier doesn't accept it."""
        ...


class TokenIssuer(Protocol):
    async def create(
        self, name: str, scope: str, recipient_id: str | None, now: datetime
    ) -> tuple[str, StoredToken]:
        """A new token (shown once) and what is kept of it."""
        ...


Catalogs = Phrasebook
"""The translated catalogs: the port is the domain's own description of what it reads."""


class Clock(Protocol):
    def now(self) -> datetime: ...


class Metrics(Protocol):
    def request_processed(self, outcome: str) -> None: ...

    def delivery_recorded(self, channel: Channel, status: DeliveryStatus) -> None: ...

    def provider_request(self, provider: str, outcome: str, seconds: float) -> None: ...

    def delivery_latency(self, channel: Channel, seconds: float) -> None: ...

    def duplicate_suppressed(self, channel: Channel) -> None: ...

    def failover(
        self, from_channel: Channel, to_channel: Channel, reason: Reason | None
    ) -> None: ...

    def bounce(self, channel: Channel, reason: Reason | None) -> None: ...

    def sms_sent(self, encoding: str, segments: int) -> None: ...

    def translation(self, provider: str, outcome: str) -> None: ...

    def unknown_outcome(self, channel: Channel) -> None:
        """A delivery found with its earlier attempt's outcome unknown."""
        ...

    def unknown_outcome_lookup(self, channel: Channel, result: str) -> None:
        """What asking the provider about an unknown outcome gave: found, not_found, failed
        or over_budget (the last three are sent again)."""
        ...

    def retry(self, provider: str) -> None: ...

    def circuit_changed(self, provider: str, *, is_open: bool) -> None: ...

    def consumer_lag(self, topic: str, partition: int, lag: int) -> None: ...

    def consumer_lag_gone(self, topic: str, partition: int) -> None:
        """A partition this process no longer reads: its lag is its new reader's to report."""
        ...

    def contact_points(self, counts: Mapping[tuple[Channel, ContactStatus], int]) -> None:
        """How many addresses are active, failing, opted out — the whole count, each time."""
        ...

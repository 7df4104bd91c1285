"""The delivery domain as plain data: who gets told, on which channel, and what happened.

Values mirror the contract (shared/spec/contract.md) so that the wire models at the edges
convert one to one. Everything here is immutable and free of I/O.
"""

from __future__ import annotations

from dataclasses import field
from datetime import datetime
from enum import StrEnum

from notifier.domain.values import value_type


class Channel(StrEnum):
    SMS = "sms"
    EMAIL = "email"
    APP = "app"


class Role(StrEnum):
    GUARDIAN = "guardian"
    STAFF = "staff"
    STUDENT = "student"


class DeliveryStatus(StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    DEFERRED = "deferred"
    BOUNCED = "bounced"
    FAILED = "failed"
    SUPPRESSED = "suppressed"
    SKIPPED = "skipped"


class Reason(StrEnum):
    MAILBOX_FULL = "mailbox_full"
    HARD_BOUNCE = "hard_bounce"
    BLOCKED = "blocked"
    SPAM_REPORT = "spam_report"
    INVALID_ADDRESS = "invalid_address"
    UNREACHABLE = "unreachable"
    OPTED_OUT = "opted_out"
    PROVIDER_ERROR = "provider_error"
    UNKNOWN_RECIPIENT = "unknown_recipient"
    NO_CONTACT = "no_contact"
    DEFERRED_TOO_LONG = "deferred_too_long"
    MUTED = "muted"


class Route(StrEnum):
    """Why a delivery went out on its channel; support staff read these back."""

    PREFERRED = "preferred"
    ROLE_DEFAULT = "role_default"
    DISTRICT_DEFAULT = "district_default"
    ONLY_CONTACT = "only_contact"
    APP_ONLY = "app_only"
    # Not in the contract's list: the inbox copy every recipient gets beside their
    # notification channel (rule 6). Without it, that copy would claim a reason it doesn't have.
    APP_INBOX = "app_inbox"
    CONTACT_POINT_FAILING = "contact_point_failing"
    FAILOVER_BOUNCE = "failover_bounce"
    FAILOVER_DEFERRED_TOO_LONG = "failover_deferred_too_long"
    FAILOVER_PROVIDER_ERROR = "failover_provider_error"
    FAILOVER_REJECTED = "failover_rejected"


class ContactStatus(StrEnum):
    ACTIVE = "active"
    FAILING = "failing"
    OPTED_OUT = "opted_out"


class Scope(StrEnum):
    """What a bearer token lets its holder do (/api/ and the console)."""

    SUPPORT = "support"
    """Look people up and reset their contact points."""
    SELF_SERVICE = "self-service"
    """The app acting for one recipient: its own record and addresses only."""
    ADMIN = "admin"
    """Support's rights and the audit log."""


class RequestKind(StrEnum):
    CONVERSATION_MESSAGE = "conversation.message"
    SYSTEM = "system"


TERMINAL_STATUSES = frozenset(
    {
        DeliveryStatus.SENT,
        DeliveryStatus.DELIVERED,
        DeliveryStatus.BOUNCED,
        DeliveryStatus.FAILED,
        DeliveryStatus.SUPPRESSED,
        DeliveryStatus.SKIPPED,
    }
)
"""A delivery in one of these states has had its one attempt; redelivery must not repeat it."""


@value_type
class District:
    id: str
    name: str
    default_channel: Channel
    role_channels: dict[Role, Channel]
    default_language: str
    languages: tuple[str, ...]
    sms_label: bool
    max_recipients: int
    timezone: str
    sms_sender: str | None
    email_from_address: str | None
    email_from_name: str | None
    deferred_failover_minutes: int | None = None
    """How long an email may stay deferred (or an SMS without a final status) before the
    message fails over; None means the service's default."""
    sms_max_segments: int = 3
    """Longer texts are shortened to this many segments, ending with a "Read more" link."""
    bilingual_shared_texts: bool = False
    """People of different languages on one phone: one text in each of their languages
    (True) or a text each (False)."""
    reply_domain: str | None = None
    """Where email replies come back (an Inbound Parse domain); None: emails carry no
    Reply-To and replies by email are not taken."""


@value_type
class Recipient:
    id: str
    district_id: str
    display_name: str
    first_name: str
    role: Role
    language: str | None
    preferred_channel: Channel | None
    phone: str | None
    email: str | None
    app: bool
    updated_at: datetime

    def address_for(self, channel: Channel) -> str | None:
        if channel is Channel.SMS:
            return self.phone
        if channel is Channel.EMAIL:
            return self.email
        return self.id if self.app else None


class ConversationStatus(StrEnum):
    OPEN = "open"
    STOPPED = "stopped"


@value_type
class ConversationState:
    """What the conversation core says of a conversation: stopped ones take no replies;
    participants who muted it get no texts or emails for it (the app inbox still)."""

    conversation_id: str
    status: ConversationStatus
    muted_by: frozenset[str]
    updated_at: datetime


@value_type
class ContactPoint:
    """The state of one address. It belongs to the address, not the person: a family
    sharing a full inbox fails over together."""

    channel: Channel
    address: str
    status: ContactStatus = ContactStatus.ACTIVE
    reason: Reason | None = None
    since: datetime | None = None
    strikes: int = 0
    """Failures counted towards marking the address failing (e.g. unreachable handset)."""

    @property
    def usable(self) -> bool:
        return self.status is ContactStatus.ACTIVE


@value_type
class Sender:
    id: str
    display_name: str
    role: str


@value_type
class Attachment:
    filename: str
    url: str
    size_bytes: int | None = None


@value_type
class SendRequest:
    request_id: str
    message_id: str
    conversation_id: str
    district_id: str
    kind: RequestKind
    sender: Sender
    body: str
    language: str
    translations: dict[str, str]
    attachments: tuple[Attachment, ...]
    recipient_ids: tuple[str, ...]
    created_at: datetime
    conversation_title: str | None = None


@value_type
class RenderedSms:
    body: str
    segments: int = 1
    encoding: str = "gsm_7"


@value_type
class RenderedEmail:
    subject: str
    text: str
    html: str


@value_type
class OutboundMessage:
    """Everything a provider needs for one delivery, already rendered."""

    delivery_id: str
    message_id: str
    conversation_id: str
    recipient_id: str
    channel: Channel
    to: str
    language: str
    sms: RenderedSms | None = None
    email: RenderedEmail | None = None
    sender_address: str | None = None
    sender_name: str | None = None
    inbox_body: str | None = None
    reply_to: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


@value_type
class DeliveryEvent:
    event_id: str
    delivery_id: str
    message_id: str
    conversation_id: str
    recipient_id: str
    channel: Channel
    status: DeliveryStatus
    reason: Reason | None
    fallback_from: Channel | None
    route: Route | None
    provider: str | None
    provider_message_id: str | None
    language: str | None
    occurred_at: datetime


@value_type
class ReplyAttachment:
    """What was attached to an email reply: a reference only, the content is not kept."""

    filename: str
    content_type: str
    size_bytes: int


@value_type
class Reply:
    """A reply that came back by text or email, for the conversation it answers."""

    reply_id: str
    conversation_id: str
    author_ids: tuple[str, ...]
    authors_certain: bool
    """False when the text came from a phone several participants share: any of
    ``author_ids`` may have written it."""
    channel: Channel
    text: str
    received_at: datetime
    provider: str
    provider_message_id: str
    language: str | None = None
    """Detected from the text; None when too short or mixed to tell."""
    author_hint: str | None = None
    """Of several ``author_ids``, the only one who reads the language the reply is written
    in; None when that singles out nobody."""
    translations: dict[str, str] = field(default_factory=dict)
    """Into the languages of the conversation's other participants, where a translator is
    configured."""
    attachments: tuple[ReplyAttachment, ...] = ()

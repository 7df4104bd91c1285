"""The Kafka payloads of the contract as pydantic models, and their conversion to the domain.

Inbound models reject unknown ``schema`` versions and malformed values; unknown extra fields
are ignored so the conversation core can add fields without breaking notifier.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from notifier.domain.model import (
    Attachment,
    Channel,
    ConversationState,
    ConversationStatus,
    DeliveryEvent,
    DeliveryStatus,
    District,
    Reason,
    Recipient,
    Reply,
    RequestKind,
    Role,
    Route,
    Sender,
    SendRequest,
)

# The JSON schemas state every rule the validators below enforce (a validator keeps its
# clearer message); the AsyncAPI document and the README's limits table are generated from
# those schemas, so a limit is written once, here.
NUL = r"\u0000"
"""A JSON-schema ``pattern`` that finds U+0000: every inbound string is ``not`` it."""

Id = Annotated[str, StringConstraints(min_length=1, max_length=128)]
LanguageTag = Annotated[
    str,
    StringConstraints(min_length=2, max_length=35, pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$"),
]
# The contract's hard cap on a send request's recipients; a district's own cap is lower.
RECIPIENTS_CAP = 50
DEFAULT_MAX_RECIPIENTS = 15
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
# Deliberately simple: one @, no spaces, a dot in the domain. Providers do the real check.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DOMAIN = r"^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"


_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)
# Far enough either side of any real send or directory change, and far enough from datetime's
# own ends that shifting a moment into any time zone, or adding a failover delay, can't
# overflow.
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def _rfc3339_text(value: object) -> object:
    # pydantic would also read a number as seconds since the epoch, and ISO 8601 forms
    # RFC 3339 doesn't allow; the contract's timestamps are RFC 3339 strings.
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise ValueError("timestamp must be an RFC 3339 string, e.g. 2026-09-01T14:03:00Z")
    return value


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamp must carry a UTC offset (RFC 3339)")
    try:
        moment = value.astimezone(UTC)
    except OverflowError:
        raise ValueError("timestamp is out of range") from None
    if not _EARLIEST <= moment < _LATEST:
        raise ValueError("timestamp must be between 1970 and 9000")
    return moment


def _e164(value: str) -> str:
    if not _E164.match(value):
        raise ValueError("phone must be in E.164 format, e.g. +15555550123")
    return value


def _email(value: str) -> str:
    if not _EMAIL.match(value):
        raise ValueError("email must be an address like name@example.org")
    return value


def _time_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("timezone must be an IANA time zone name, e.g. America/Chicago") from None
    return value


def _no_nul(value: Any) -> Any:
    """PostgreSQL can't store U+0000 in text, and no name, id or message needs it."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("text must not contain NUL characters (U+0000)")
    elif isinstance(value, dict):
        for key, item in value.items():
            _no_nul(key)
            _no_nul(item)
    elif isinstance(value, list | tuple | frozenset | set):
        for item in value:
            _no_nul(item)
    return value


def _state_what_is_enforced(schema: dict[str, Any]) -> None:
    """Adds to an inbound model's JSON schema what `_no_nul` enforces, and the pattern of a
    dict's keys, which pydantic states only as ``patternProperties`` (that leaves other keys
    free)."""
    if schema.get("type") == "string" and "const" not in schema and "enum" not in schema:
        schema["not"] = {"pattern": NUL}
    patterns = schema.get("patternProperties", {})
    if len(patterns) == 1 and "propertyNames" in schema:
        schema["propertyNames"].setdefault("pattern", next(iter(patterns)))
    for keyword in ("properties", "patternProperties"):
        for subschema in schema.get(keyword, {}).values():
            _state_what_is_enforced(subschema)
    for keyword in ("items", "additionalProperties", "propertyNames"):
        if isinstance(schema.get(keyword), dict):
            _state_what_is_enforced(schema[keyword])
    for keyword in ("anyOf", "allOf", "oneOf"):
        for subschema in schema.get(keyword, []):
            _state_what_is_enforced(subschema)


def _rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


UtcTimestamp = Annotated[
    datetime,
    BeforeValidator(_rfc3339_text),
    AfterValidator(_utc),
    # formatMinimum and formatExclusiveMaximum: the keywords of ajv-formats, which compare
    # date-times as moments (offsets included).
    Field(
        description="An RFC 3339 string with a UTC offset, e.g. 2026-09-01T14:03:00Z; "
        "not a number.",
        json_schema_extra={
            "pattern": _RFC3339.pattern,
            "formatMinimum": _rfc3339(_EARLIEST),
            "formatExclusiveMaximum": _rfc3339(_LATEST),
        },
    ),
]
TimeZone = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64),
    AfterValidator(_time_zone),
    # JSON Schema has no format for it; a custom one names it for tools and the limits table.
    Field(
        description="An IANA time zone name, e.g. America/Chicago.",
        json_schema_extra={"format": "iana-time-zone"},
    ),
]
Phone = Annotated[
    str,
    AfterValidator(_e164),
    Field(description="E.164, e.g. +15555550123.", json_schema_extra={"pattern": _E164.pattern}),
]
Email = Annotated[
    str,
    StringConstraints(max_length=320),
    AfterValidator(_email),
    Field(json_schema_extra={"pattern": _EMAIL.pattern}),
]
RecordKey = Annotated[
    Id,
    AfterValidator(_no_nul),
    Field(
        description="The id the record is about; a tombstone (a null value) deletes it.",
        json_schema_extra=_state_what_is_enforced,
    ),
]
"""The key of a record on a compacted input topic, checked where a tombstone needs it."""


class _Inbound(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
        frozen=True,
        str_strip_whitespace=True,
        json_schema_extra=_state_what_is_enforced,
    )

    _no_nul_anywhere = field_validator("*", mode="after")(_no_nul)


class SenderWire(_Inbound):
    id: Id
    display_name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    role: Annotated[str, StringConstraints(max_length=64)]


class AttachmentWire(_Inbound):
    filename: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    url: Annotated[str, StringConstraints(min_length=1, max_length=2048, pattern=r"^https?://")]
    size_bytes: int | None = Field(None, ge=0)


class RecipientRef(_Inbound):
    id: Id


class SendRequestWire(_Inbound):
    """``send-request/1`` on conversation.send-requests."""

    schema_: Literal["send-request/1"] = Field(alias="schema")
    request_id: Id
    message_id: Id
    conversation_id: Id
    conversation_title: str | None = Field(
        None, max_length=200, description="Optional; named in the email subject when present."
    )
    district_id: Id
    kind: RequestKind
    sender: SenderWire
    body: Annotated[str, StringConstraints(min_length=1, max_length=20000)]
    language: LanguageTag
    translations: dict[
        LanguageTag, Annotated[str, StringConstraints(min_length=1, max_length=20000)]
    ] = Field(default_factory=dict, max_length=50)
    attachments: list[AttachmentWire] = Field(default_factory=list, max_length=20)
    recipients: list[RecipientRef] = Field(
        min_length=1,
        max_length=RECIPIENTS_CAP,
        description="More than the district's max_recipients (district/1; default "
        f"{DEFAULT_MAX_RECIPIENTS}) is dead-lettered as too_many_recipients.",
    )
    created_at: UtcTimestamp

    def to_domain(self) -> SendRequest:
        return SendRequest(
            request_id=self.request_id,
            message_id=self.message_id,
            conversation_id=self.conversation_id,
            district_id=self.district_id,
            kind=self.kind,
            sender=Sender(self.sender.id, self.sender.display_name, self.sender.role),
            body=self.body,
            language=self.language,
            translations=dict(self.translations),
            attachments=tuple(
                Attachment(a.filename, a.url, a.size_bytes) for a in self.attachments
            ),
            recipient_ids=tuple(r.id for r in self.recipients),
            created_at=self.created_at,
            conversation_title=self.conversation_title,
        )


class RecipientWire(_Inbound):
    """``recipient/1`` on directory.recipients."""

    schema_: Literal["recipient/1"] = Field(alias="schema")
    id: Id
    district_id: Id
    display_name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    first_name: Annotated[str, StringConstraints(max_length=100)] = ""
    role: Role
    language: LanguageTag | None = None
    preferred_channel: Channel | None = None
    phone: Phone | None = None
    email: Email | None = None
    app: bool = True
    updated_at: UtcTimestamp

    def to_domain(self) -> Recipient:
        return Recipient(
            id=self.id,
            district_id=self.district_id,
            display_name=self.display_name,
            first_name=self.first_name,
            role=self.role,
            language=self.language,
            preferred_channel=self.preferred_channel,
            phone=self.phone,
            email=self.email.lower() if self.email else None,
            app=self.app,
            updated_at=self.updated_at,
        )


class EmailFromWire(_Inbound):
    email: Email
    name: Annotated[str, StringConstraints(max_length=200)] | None = None


class DistrictWire(_Inbound):
    """``district/1`` on directory.districts."""

    schema_: Literal["district/1"] = Field(alias="schema")
    id: Id
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    default_channel: Literal[Channel.SMS, Channel.EMAIL] = Channel.EMAIL
    # Guardians get SMS unless the district says otherwise, as the help pages promise.
    role_channels: dict[Role, Channel] = Field(default_factory=lambda: {Role.GUARDIAN: Channel.SMS})
    default_language: LanguageTag = "en"
    languages: list[LanguageTag] = Field(default_factory=lambda: ["en"], max_length=50)
    sms_label: bool = True
    max_recipients: int = Field(
        DEFAULT_MAX_RECIPIENTS,
        ge=1,
        le=RECIPIENTS_CAP,
        description="The most recipients a send request may name; more: too_many_recipients.",
    )
    timezone: TimeZone = "UTC"
    # A number in E.164, an alphanumeric sender id or a Messaging Service SID.
    sms_sender: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    email_from: EmailFromWire | None = None
    sms_max_segments: int = Field(
        3,
        ge=1,
        le=10,
        description="Not in district/1 yet: longer texts are shortened to this many segments.",
    )
    shared_phone_languages: Literal["per_language", "bilingual"] = Field(
        "per_language",
        description="Not in district/1 yet: people of different languages on one phone get "
        "a text each (per_language) or one text in all their languages (bilingual).",
    )
    deferred_failover_minutes: int | None = Field(
        None,
        ge=1,
        le=4320,
        description="Not in district/1 yet: minutes an email may stay deferred before the "
        "message fails over (default: the service's setting).",
    )
    reply_domain: Annotated[str, StringConstraints(pattern=_DOMAIN, max_length=253)] | None = Field(
        None,
        description="Not in district/1 yet: the domain whose mail SendGrid Inbound Parse "
        "hands to notifier; emails then carry a per-delivery Reply-To there.",
    )

    def to_domain(self) -> District:
        return District(
            id=self.id,
            name=self.name,
            default_channel=Channel(self.default_channel),
            role_channels=dict(self.role_channels),
            default_language=self.default_language,
            languages=tuple(self.languages),
            sms_label=self.sms_label,
            max_recipients=self.max_recipients,
            timezone=self.timezone,
            sms_sender=self.sms_sender,
            email_from_address=self.email_from.email if self.email_from else None,
            email_from_name=self.email_from.name if self.email_from else None,
            deferred_failover_minutes=self.deferred_failover_minutes,
            sms_max_segments=self.sms_max_segments,
            bilingual_shared_texts=self.shared_phone_languages == "bilingual",
            reply_domain=self.reply_domain.lower() if self.reply_domain else None,
        )


class DeliveryEventWire(BaseModel):
    """``delivery-event/1`` on notifier.delivery-events."""

    model_config = ConfigDict(populate_by_name=True)

    schema_: Literal["delivery-event/1"] = Field("delivery-event/1", alias="schema")
    event_id: str
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

    @classmethod
    def from_domain(cls, event: DeliveryEvent) -> DeliveryEventWire:
        return cls(
            event_id=event.event_id,
            message_id=event.message_id,
            conversation_id=event.conversation_id,
            recipient_id=event.recipient_id,
            channel=event.channel,
            status=event.status,
            reason=event.reason,
            fallback_from=event.fallback_from,
            route=event.route,
            provider=event.provider,
            provider_message_id=event.provider_message_id,
            language=event.language,
            occurred_at=event.occurred_at,
        )


def encode_event(event: DeliveryEvent) -> bytes:
    # Three or four of these per delivery make this the hottest encoder of the service, so
    # the payload is written out here rather than through DeliveryEventWire (16 µs an event
    # against 3): the model stays the published schema, and a test holds the two equal.
    # orjson writes the enums as their values.
    return orjson.dumps(
        {
            "schema": "delivery-event/1",
            "event_id": event.event_id,
            "message_id": event.message_id,
            "conversation_id": event.conversation_id,
            "recipient_id": event.recipient_id,
            "channel": event.channel,
            "status": event.status,
            "reason": event.reason,
            "fallback_from": event.fallback_from,
            "route": event.route,
            "provider": event.provider,
            "provider_message_id": event.provider_message_id,
            "language": event.language,
            "occurred_at": _rfc3339(event.occurred_at),
        }
    )


class ConversationStateWire(_Inbound):
    """``conversation-state/1`` on conversation.state (compacted; a null value forgets)."""

    schema_: Literal["conversation-state/1"] = Field(alias="schema")
    conversation_id: Id
    status: ConversationStatus
    muted_by: list[Id] = Field(default_factory=list, max_length=200)
    updated_at: UtcTimestamp

    def to_domain(self) -> ConversationState:
        return ConversationState(
            conversation_id=self.conversation_id,
            status=self.status,
            muted_by=frozenset(self.muted_by),
            updated_at=self.updated_at,
        )


class ReplyAttachmentWire(BaseModel):
    """Named like send-request/1's attachments; there is no url: the file is not kept."""

    filename: str
    content_type: str
    size_bytes: int


class ReplyWire(BaseModel):
    """``reply/1`` on conversation.replies (key conversation_id)."""

    model_config = ConfigDict(populate_by_name=True)

    schema_: Literal["reply/1"] = Field("reply/1", alias="schema")
    reply_id: str = Field(description="Stable per inbound provider message: drop repeats.")
    conversation_id: str
    author_recipient_ids: list[str]
    authors_certain: bool = Field(
        description="False whenever the phone or address is shared by several participants "
        "who were told of the conversation within the reply window."
    )
    author_hint: str | None = Field(
        None,
        description="Of several authors, the only one who reads the language the reply is "
        "written in (a hint, not certainty); null when that singles out nobody.",
    )
    channel: Channel
    text: str
    language: str | None = Field(None, description="Detected language, when known.")
    translations: dict[str, str] = Field(default_factory=dict)
    attachments: list[ReplyAttachmentWire] = Field(
        default_factory=list, description="References only: the content is not kept."
    )
    received_at: datetime
    provider: str
    provider_message_id: str


def encode_reply(reply: Reply) -> bytes:
    payload = ReplyWire(
        reply_id=reply.reply_id,
        conversation_id=reply.conversation_id,
        author_recipient_ids=list(reply.author_ids),
        authors_certain=reply.authors_certain,
        author_hint=reply.author_hint,
        channel=reply.channel,
        text=reply.text,
        language=reply.language,
        translations=reply.translations,
        attachments=[
            ReplyAttachmentWire(
                filename=a.filename, content_type=a.content_type, size_bytes=a.size_bytes
            )
            for a in reply.attachments
        ],
        received_at=reply.received_at,
        provider=reply.provider,
        provider_message_id=reply.provider_message_id,
    ).model_dump(mode="json", by_alias=True)
    payload["received_at"] = _rfc3339(reply.received_at)
    return orjson.dumps(payload)

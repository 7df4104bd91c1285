"""The contract's Kafka payloads: parsing, validation, conversion and the event encoding."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from jsonschema import Draft7Validator
from pydantic import BaseModel, ValidationError

from notifier.domain.model import (
    Attachment,
    Channel,
    DeliveryEvent,
    DeliveryStatus,
    Reason,
    RequestKind,
    Role,
    Route,
    Sender,
)
from notifier.wire import (
    NUL,
    ConversationStateWire,
    DeliveryEventWire,
    DistrictWire,
    RecipientWire,
    SendRequestWire,
    encode_event,
)

# The examples of shared/spec/contract.md, verbatim.
SEND_REQUEST_EXAMPLE: dict[str, Any] = {
    "schema": "send-request/1",
    "request_id": "0f5c6a52-7a0e-4b5e-9d1f-6f3c2a1b9e77",
    "message_id": "msg-1042",
    "conversation_id": "conv-77",
    "district_id": "d-springfield",
    "kind": "conversation.message",
    "sender": {"id": "staff-3", "display_name": "Ms. Rivera", "role": "staff"},
    "body": "Field trip forms are due Friday.",
    "language": "en",
    "translations": {"es": "Los formularios de la excursión vencen el viernes."},
    "attachments": [
        {"filename": "form.pdf", "url": "https://files.example/f/9", "size_bytes": 48213}
    ],
    "recipients": [{"id": "guardian-9"}, {"id": "staff-4"}],
    "created_at": "2026-11-28T15:00:00Z",
}

RECIPIENT_EXAMPLE: dict[str, Any] = {
    "schema": "recipient/1",
    "id": "guardian-9",
    "district_id": "d-springfield",
    "display_name": "Dennis Park",
    "first_name": "Dennis",
    "role": "guardian",
    "language": "es",
    "preferred_channel": None,
    "phone": "+15555550123",
    "email": "dennis.park@example.org",
    "app": True,
    "updated_at": "2026-11-20T10:00:00Z",
}

DISTRICT_EXAMPLE: dict[str, Any] = {
    "schema": "district/1",
    "id": "d-springfield",
    "name": "Springfield Public Schools",
    "default_channel": "email",
    "role_channels": {"guardian": "sms"},
    "default_language": "en",
    "languages": ["en", "es", "vi", "zh-Hans", "ar", "ht"],
    "sms_label": True,
    "max_recipients": 15,
    "timezone": "America/Chicago",
    "sms_sender": "MG00000000000000000000000000000000",
    "email_from": {"email": "no-reply@springfield.example", "name": "Springfield Schools"},
}

DELIVERY_EVENT_FIELDS = {
    "schema",
    "event_id",
    "message_id",
    "conversation_id",
    "recipient_id",
    "channel",
    "status",
    "reason",
    "fallback_from",
    "route",
    "provider",
    "provider_message_id",
    "language",
    "occurred_at",
}


def send_request_payload(**overrides: Any) -> dict[str, Any]:
    payload = copy.deepcopy(SEND_REQUEST_EXAMPLE)
    payload.update(overrides)
    return payload


def recipient_payload(**overrides: Any) -> dict[str, Any]:
    payload = copy.deepcopy(RECIPIENT_EXAMPLE)
    payload.update(overrides)
    return payload


def delivery_event(**overrides: Any) -> DeliveryEvent:
    values: dict[str, Any] = {
        "event_id": "5d7e0a3c-1b2f-5c4d-8e9f-0a1b2c3d4e5f",
        "delivery_id": "dlv-1",
        "message_id": "msg-1042",
        "conversation_id": "conv-77",
        "recipient_id": "guardian-9",
        "channel": Channel.SMS,
        "status": DeliveryStatus.SENT,
        "reason": None,
        "fallback_from": Channel.EMAIL,
        "route": Route.CONTACT_POINT_FAILING,
        "provider": "twilio",
        "provider_message_id": "SM0123456789abcdef0123456789abcdef",
        "language": "es",
        "occurred_at": datetime(2026, 11, 28, 15, 0, 1, tzinfo=UTC),
    }
    values.update(overrides)
    return DeliveryEvent(**values)


# Send request


def test_contract_example_send_request_parses_and_converts_to_the_domain() -> None:
    request = SendRequestWire.model_validate(SEND_REQUEST_EXAMPLE).to_domain()

    assert request.request_id == "0f5c6a52-7a0e-4b5e-9d1f-6f3c2a1b9e77"
    assert request.message_id == "msg-1042"
    assert request.conversation_id == "conv-77"
    assert request.district_id == "d-springfield"
    assert request.kind is RequestKind.CONVERSATION_MESSAGE
    assert request.sender == Sender("staff-3", "Ms. Rivera", "staff")
    assert request.body == "Field trip forms are due Friday."
    assert request.language == "en"
    assert request.translations == {"es": "Los formularios de la excursión vencen el viernes."}
    assert request.attachments == (Attachment("form.pdf", "https://files.example/f/9", 48213),)
    assert request.recipient_ids == ("guardian-9", "staff-4")
    assert request.created_at == datetime(2026, 11, 28, 15, 0, tzinfo=UTC)
    assert request.conversation_title is None


def test_send_request_parses_from_json_bytes() -> None:
    wire = SendRequestWire.model_validate_json(orjson.dumps(SEND_REQUEST_EXAMPLE))

    assert wire.to_domain().message_id == "msg-1042"


def test_send_request_timestamp_with_an_offset_is_converted_to_utc() -> None:
    payload = send_request_payload(created_at="2026-11-28T09:00:00-06:00")

    created_at = SendRequestWire.model_validate(payload).to_domain().created_at

    assert created_at == datetime(2026, 11, 28, 15, 0, tzinfo=UTC)
    assert created_at.utcoffset() == timedelta(0)


def test_send_request_with_an_unknown_schema_version_is_rejected() -> None:
    with pytest.raises(ValidationError, match="schema"):
        SendRequestWire.model_validate(send_request_payload(schema="send-request/2"))


def test_send_request_without_a_schema_is_rejected() -> None:
    payload = send_request_payload()
    del payload["schema"]

    with pytest.raises(ValidationError, match="schema"):
        SendRequestWire.model_validate(payload)


def test_send_request_timestamp_without_an_offset_is_rejected() -> None:
    with pytest.raises(ValidationError, match="created_at"):
        SendRequestWire.model_validate(send_request_payload(created_at="2026-11-28T15:00:00"))


@pytest.mark.parametrize("created_at", [1764342000, "1764342000", 1764342000.5, "2026-11-28"])
def test_send_request_timestamp_that_is_not_an_rfc3339_string_is_rejected(
    created_at: object,
) -> None:
    with pytest.raises(ValidationError, match="RFC 3339"):
        SendRequestWire.model_validate(send_request_payload(created_at=created_at))


@pytest.mark.parametrize(
    "created_at",
    [
        "0001-01-01T00:00:00Z",
        "1969-12-31T23:59:59Z",
        "9999-12-31T23:59:59-01:00",
        "9000-01-01T00:00:00Z",
    ],
)
def test_send_request_timestamp_outside_1970_to_9000_is_rejected(created_at: str) -> None:
    with pytest.raises(ValidationError, match="created_at"):
        SendRequestWire.model_validate(send_request_payload(created_at=created_at))


def test_send_request_timestamp_with_nanoseconds_is_accepted() -> None:
    request = SendRequestWire.model_validate(
        send_request_payload(created_at="2026-11-28T15:00:00.123456789Z")
    )

    assert request.created_at.replace(microsecond=0) == datetime(2026, 11, 28, 15, tzinfo=UTC)


@pytest.mark.parametrize(
    "overrides",
    [
        {"body": "Field trip\x00"},
        {"conversation_id": "conv\x00"},
        {"translations": {"es": "hola\x00"}},
        {"sender": {"id": "staff-3", "display_name": "Ms.\x00Rivera", "role": "staff"}},
        {"recipients": [{"id": "guardian\x00"}]},
    ],
)
def test_send_request_with_a_nul_character_anywhere_is_rejected(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="NUL"):
        SendRequestWire.model_validate(send_request_payload(**overrides))


def test_send_request_without_recipients_is_rejected() -> None:
    with pytest.raises(ValidationError, match="recipients"):
        SendRequestWire.model_validate(send_request_payload(recipients=[]))


def test_send_request_with_51_recipients_is_rejected() -> None:
    recipients = [{"id": f"guardian-{n}"} for n in range(51)]

    with pytest.raises(ValidationError, match="recipients"):
        SendRequestWire.model_validate(send_request_payload(recipients=recipients))


def test_send_request_with_50_recipients_is_accepted() -> None:
    recipients = [{"id": f"guardian-{n}"} for n in range(50)]

    request = SendRequestWire.model_validate(send_request_payload(recipients=recipients))

    assert len(request.to_domain().recipient_ids) == 50


def test_send_request_ignores_unknown_extra_fields() -> None:
    payload = send_request_payload(priority="high", thread={"depth": 2})

    request = SendRequestWire.model_validate(payload).to_domain()

    assert request.message_id == "msg-1042"
    assert not hasattr(request, "priority")


def test_send_request_without_optional_fields_gets_empty_translations_and_attachments() -> None:
    payload = send_request_payload()
    del payload["translations"]
    del payload["attachments"]

    request = SendRequestWire.model_validate(payload).to_domain()

    assert request.translations == {}
    assert request.attachments == ()


# Recipient


def test_contract_example_recipient_converts_to_the_domain() -> None:
    person = RecipientWire.model_validate(RECIPIENT_EXAMPLE).to_domain()

    assert person.id == "guardian-9"
    assert person.first_name == "Dennis"
    assert person.role is Role.GUARDIAN
    assert person.language == "es"
    assert person.preferred_channel is None
    assert person.phone == "+15555550123"
    assert person.email == "dennis.park@example.org"
    assert person.app is True
    assert person.updated_at == datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize("phone", ["5555550123", "+1 555 555 0123", "+0555550123", "+1555"])
def test_recipient_phone_not_in_e164_is_rejected(phone: str) -> None:
    with pytest.raises(ValidationError, match="phone"):
        RecipientWire.model_validate(recipient_payload(phone=phone))


@pytest.mark.parametrize(
    "email", ["dennis.park", "dennis park@example.org", "dennis@example", "a@b@example.org"]
)
def test_recipient_bad_email_is_rejected(email: str) -> None:
    with pytest.raises(ValidationError, match="email"):
        RecipientWire.model_validate(recipient_payload(email=email))


def test_recipient_email_is_lower_cased_in_the_domain() -> None:
    payload = recipient_payload(email="Dennis.Park@Example.ORG")

    assert RecipientWire.model_validate(payload).to_domain().email == "dennis.park@example.org"


def test_recipient_without_phone_or_email_is_valid() -> None:
    person = RecipientWire.model_validate(recipient_payload(phone=None, email=None)).to_domain()

    assert person.phone is None
    assert person.email is None


def test_recipient_with_an_unknown_schema_version_is_rejected() -> None:
    with pytest.raises(ValidationError, match="schema"):
        RecipientWire.model_validate(recipient_payload(schema="recipient/2"))


# District


def test_contract_example_district_converts_to_the_domain() -> None:
    springfield = DistrictWire.model_validate(DISTRICT_EXAMPLE).to_domain()

    assert springfield.default_channel is Channel.EMAIL
    assert springfield.role_channels == {Role.GUARDIAN: Channel.SMS}
    assert springfield.languages == ("en", "es", "vi", "zh-Hans", "ar", "ht")
    assert springfield.max_recipients == 15
    assert springfield.email_from_address == "no-reply@springfield.example"
    assert springfield.email_from_name == "Springfield Schools"


def test_district_without_role_channels_gives_guardians_sms() -> None:
    payload = {"schema": "district/1", "id": "d-shelbyville", "name": "Shelbyville Schools"}

    shelbyville = DistrictWire.model_validate(payload).to_domain()

    assert shelbyville.role_channels == {Role.GUARDIAN: Channel.SMS}


def test_district_may_set_role_channels_to_empty() -> None:
    payload = {**DISTRICT_EXAMPLE, "role_channels": {}}

    assert DistrictWire.model_validate(payload).to_domain().role_channels == {}


def test_district_reply_domain_is_optional_and_lower_cased() -> None:
    assert DistrictWire.model_validate(DISTRICT_EXAMPLE).to_domain().reply_domain is None
    payload = {**DISTRICT_EXAMPLE, "reply_domain": "Reply.Springfield.example"}
    assert DistrictWire.model_validate(payload).to_domain().reply_domain == (
        "reply.springfield.example"
    )


@pytest.mark.parametrize(
    "domain", ["springfield", "reply@springfield.example", "-x.example", "a b.example", ""]
)
def test_district_reply_domain_must_be_a_domain(domain: str) -> None:
    with pytest.raises(ValidationError, match="reply_domain"):
        DistrictWire.model_validate({**DISTRICT_EXAMPLE, "reply_domain": domain})


@pytest.mark.parametrize("zone", ["../../etc/passwd", "Mars/Olympus_Mons", "", "a" * 65])
def test_district_timezone_must_be_an_iana_zone(zone: str) -> None:
    with pytest.raises(ValidationError, match="timezone"):
        DistrictWire.model_validate(DISTRICT_EXAMPLE | {"timezone": zone})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sms_sender", "+1555" + "5" * 61),
        ("email_from", {"email": "a" * 310 + "@example.org"}),
        ("email_from", {"email": "no-reply@springfield.example", "name": "n" * 201}),
    ],
)
def test_district_values_longer_than_their_columns_are_rejected(field: str, value: Any) -> None:
    with pytest.raises(ValidationError, match=field):
        DistrictWire.model_validate(DISTRICT_EXAMPLE | {field: value})


def test_district_default_channel_may_not_be_the_app() -> None:
    with pytest.raises(ValidationError, match="default_channel"):
        DistrictWire.model_validate({**DISTRICT_EXAMPLE, "default_channel": "app"})


# Delivery event


def test_encoded_event_carries_the_schema_and_every_contract_field() -> None:
    payload = orjson.loads(encode_event(delivery_event()))

    assert set(payload) == DELIVERY_EVENT_FIELDS
    assert payload == {
        "schema": "delivery-event/1",
        "event_id": "5d7e0a3c-1b2f-5c4d-8e9f-0a1b2c3d4e5f",
        "message_id": "msg-1042",
        "conversation_id": "conv-77",
        "recipient_id": "guardian-9",
        "channel": "sms",
        "status": "sent",
        "reason": None,
        "fallback_from": "email",
        "route": "contact_point_failing",
        "provider": "twilio",
        "provider_message_id": "SM0123456789abcdef0123456789abcdef",
        "language": "es",
        "occurred_at": "2026-11-28T15:00:01Z",
    }


def test_encoded_event_time_is_utc_with_a_z_suffix() -> None:
    chicago = timezone(timedelta(hours=-6))
    event = delivery_event(occurred_at=datetime(2026, 11, 28, 9, 0, 1, 250000, tzinfo=chicago))

    occurred_at = orjson.loads(encode_event(event))["occurred_at"]

    assert occurred_at.endswith("Z")
    assert datetime.fromisoformat(occurred_at) == datetime(2026, 11, 28, 15, 0, 1, 250000, UTC)


def test_encoded_event_keeps_reason_and_null_fallback() -> None:
    event = delivery_event(
        status=DeliveryStatus.SUPPRESSED,
        reason=Reason.OPTED_OUT,
        fallback_from=None,
        route=Route.ROLE_DEFAULT,
        provider=None,
        provider_message_id=None,
    )

    payload = orjson.loads(encode_event(event))

    assert payload["status"] == "suppressed"
    assert payload["reason"] == "opted_out"
    assert payload["fallback_from"] is None
    assert payload["provider"] is None


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"status": DeliveryStatus.QUEUED, "fallback_from": None, "route": Route.PREFERRED},
        {"status": DeliveryStatus.BOUNCED, "reason": Reason.MAILBOX_FULL, "language": None},
        {"channel": Channel.APP, "provider": None, "provider_message_id": None},
        {"occurred_at": datetime(2026, 11, 28, 9, 0, 1, 7, tzinfo=timezone(timedelta(hours=-6)))},
    ],
)
def test_encoded_event_is_what_the_published_model_dumps(overrides: dict[str, Any]) -> None:
    # encode_event writes the payload by hand for speed; DeliveryEventWire is the schema
    # the AsyncAPI document publishes. The two may not drift apart.
    event = delivery_event(**overrides)
    published = DeliveryEventWire.from_domain(event).model_dump(mode="json", by_alias=True)

    payload = orjson.loads(encode_event(event))

    assert payload == published | {"occurred_at": payload["occurred_at"]}
    assert datetime.fromisoformat(payload["occurred_at"]) == event.occurred_at


# The published schemas (AsyncAPI and the README's limits table are made of them)

INPUT_MODELS: list[type[BaseModel]] = [
    SendRequestWire,
    RecipientWire,
    DistrictWire,
    ConversationStateWire,
]
CONVERSATION_STATE_EXAMPLE: dict[str, Any] = {
    "schema": "conversation-state/1",
    "conversation_id": "conv-77",
    "status": "open",
    "muted_by": ["guardian-9"],
    "updated_at": "2026-11-28T15:00:00Z",
}


def published_schema_refuses(model: type[BaseModel], payload: dict[str, Any]) -> bool:
    # Draft 7: the JSON Schema dialect AsyncAPI 3's Schema Object extends.
    schema = model.model_json_schema(by_alias=True)
    Draft7Validator.check_schema(schema)
    return not Draft7Validator(schema).is_valid(payload)


def model_refuses(model: type[BaseModel], payload: dict[str, Any]) -> bool:
    try:
        model.model_validate(payload)
    except ValidationError:
        return True
    return False


def string_schemas(schema: Any) -> list[dict[str, Any]]:
    if isinstance(schema, list):
        return [found for item in schema for found in string_schemas(item)]
    if not isinstance(schema, dict):
        return []
    found = [schema] if schema.get("type") == "string" else []
    for keyword, value in schema.items():
        if keyword not in ("default", "examples", "const", "enum", "not"):
            found += string_schemas(value)
    return found


@pytest.mark.parametrize(
    ("model", "example"),
    [
        (SendRequestWire, SEND_REQUEST_EXAMPLE),
        (RecipientWire, RECIPIENT_EXAMPLE),
        (DistrictWire, DISTRICT_EXAMPLE),
        (ConversationStateWire, CONVERSATION_STATE_EXAMPLE),
    ],
)
def test_published_schemas_accept_the_contract_examples(
    model: type[BaseModel], example: dict[str, Any]
) -> None:
    assert not model_refuses(model, example)
    assert not published_schema_refuses(model, example)


@pytest.mark.parametrize(
    ("model", "payload"),
    [
        (SendRequestWire, send_request_payload(body="Field trip\x00")),
        (SendRequestWire, send_request_payload(body="x" * 20001)),
        (SendRequestWire, send_request_payload(translations={"es": "hola\x00"})),
        (SendRequestWire, send_request_payload(translations={"Spanish!": "hola"})),
        (SendRequestWire, send_request_payload(recipients=[{"id": f"g-{n}"} for n in range(51)])),
        (SendRequestWire, send_request_payload(recipients=[{"id": "guardian\x00"}])),
        (SendRequestWire, send_request_payload(created_at=1764342000)),
        (SendRequestWire, send_request_payload(created_at="2026-11-28T15:00:00")),
        (SendRequestWire, send_request_payload(created_at="2026-11-28")),
        (SendRequestWire, send_request_payload(created_at="20261128T150000Z")),
        (RecipientWire, recipient_payload(phone="5555550123")),
        (RecipientWire, recipient_payload(phone="+1555\x00555")),
        (RecipientWire, recipient_payload(email="dennis.park")),
        (RecipientWire, recipient_payload(email="a" * 310 + "@example.org")),
        (DistrictWire, DISTRICT_EXAMPLE | {"email_from": {"email": "no-reply"}}),
        (DistrictWire, DISTRICT_EXAMPLE | {"languages": ["en", "e\x00s"]}),
        (DistrictWire, DISTRICT_EXAMPLE | {"timezone": "America/Chicago\x00"}),
        (DistrictWire, DISTRICT_EXAMPLE | {"max_recipients": 51}),
        (ConversationStateWire, CONVERSATION_STATE_EXAMPLE | {"muted_by": ["g\x00"]}),
    ],
)
def test_published_schemas_refuse_what_the_models_refuse(
    model: type[BaseModel], payload: dict[str, Any]
) -> None:
    assert model_refuses(model, payload)
    assert published_schema_refuses(model, payload)


@pytest.mark.parametrize("model", INPUT_MODELS)
def test_every_string_of_an_input_schema_refuses_nul(model: type[BaseModel]) -> None:
    schema = model.model_json_schema(by_alias=True)
    strings = [s for s in string_schemas(schema) if "const" not in s and "enum" not in s]

    assert strings
    assert all(s.get("not") == {"pattern": NUL} for s in strings)


def test_published_timestamp_range_is_the_one_enforced() -> None:
    created_at = SendRequestWire.model_json_schema()["properties"]["created_at"]
    earliest = datetime.fromisoformat(created_at["formatMinimum"])
    latest = datetime.fromisoformat(created_at["formatExclusiveMaximum"])

    def refused(moment: datetime) -> bool:
        text = moment.isoformat().replace("+00:00", "Z")
        return model_refuses(SendRequestWire, send_request_payload(created_at=text))

    assert not refused(earliest)
    assert refused(earliest - timedelta(seconds=1))
    assert not refused(latest - timedelta(seconds=1))
    assert refused(latest)


def test_published_time_zone_format_is_what_the_district_timezone_must_be() -> None:
    timezone_schema = DistrictWire.model_json_schema()["properties"]["timezone"]

    assert timezone_schema["format"] == "iana-time-zone"
    assert model_refuses(DistrictWire, DISTRICT_EXAMPLE | {"timezone": "Mars/Olympus_Mons"})

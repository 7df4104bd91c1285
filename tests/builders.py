"""Test data: one builder per domain value, each defaulting to the contract's examples
(shared/spec/contract.md) and taking any field as a keyword override.

The defaults describe one small world: the Springfield district, the guardian Dennis Park
(Spanish, phone and email) and Ms. Rivera's field-trip message to him and staff-4. A record or
message of a delivery belongs to that world unless overridden; its id and address follow the
``message_id``, ``recipient_id`` and ``channel`` it is given.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from notifier.domain.identity import delivery_id_for
from notifier.domain.model import (
    Channel,
    DeliveryStatus,
    District,
    OutboundMessage,
    Recipient,
    RenderedEmail,
    RenderedSms,
    RequestKind,
    Role,
    Route,
    Sender,
    SendRequest,
)
from notifier.domain.records import DeliveryRecord

DISTRICT_ID = "d-springfield"
RECIPIENT_ID = "guardian-9"
PHONE = "+15555550123"
EMAIL = "dennis.park@example.org"
RECIPIENT_UPDATED_AT = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
REQUEST_ID = "0f5c6a52-7a0e-4b5e-9d1f-6f3c2a1b9e77"
MESSAGE_ID = "msg-1042"
CONVERSATION_ID = "conv-77"
BODY = "Field trip forms are due Friday."
BODY_ES = "Los formularios de la excursión vencen el viernes."
REQUEST_CREATED_AT = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)

SMS_SENDER = "MG00000000000000000000000000000000"
EMAIL_FROM_ADDRESS = "no-reply@springfield.example"
EMAIL_FROM_NAME = "Springfield Schools"


def district(**overrides: Any) -> District:
    values: dict[str, Any] = {
        "id": DISTRICT_ID,
        "name": "Springfield Public Schools",
        "default_channel": Channel.EMAIL,
        "role_channels": {Role.GUARDIAN: Channel.SMS},
        "default_language": "en",
        "languages": ("en", "es", "vi", "zh-Hans", "ar", "ht"),
        "sms_label": True,
        "max_recipients": 15,
        "timezone": "America/Chicago",
        "sms_sender": SMS_SENDER,
        "email_from_address": EMAIL_FROM_ADDRESS,
        "email_from_name": EMAIL_FROM_NAME,
        "reply_domain": "reply.springfield.example",
    }
    values.update(overrides)
    return District(**values)


def recipient(**overrides: Any) -> Recipient:
    values: dict[str, Any] = {
        "id": RECIPIENT_ID,
        "district_id": DISTRICT_ID,
        "display_name": "Dennis Park",
        "first_name": "Dennis",
        "role": Role.GUARDIAN,
        "language": "es",
        "preferred_channel": None,
        "phone": PHONE,
        "email": EMAIL,
        "app": True,
        "updated_at": RECIPIENT_UPDATED_AT,
    }
    values.update(overrides)
    return Recipient(**values)


def send_request(**overrides: Any) -> SendRequest:
    values: dict[str, Any] = {
        "request_id": REQUEST_ID,
        "message_id": MESSAGE_ID,
        "conversation_id": CONVERSATION_ID,
        "district_id": DISTRICT_ID,
        "kind": RequestKind.CONVERSATION_MESSAGE,
        "sender": Sender("staff-3", "Ms. Rivera", "staff"),
        "body": BODY,
        "language": "en",
        "translations": {"es": BODY_ES},
        "attachments": (),
        "recipient_ids": (RECIPIENT_ID, "staff-4"),
        "created_at": REQUEST_CREATED_AT,
    }
    values.update(overrides)
    return SendRequest(**values)


def delivery_record(**overrides: Any) -> DeliveryRecord:
    """A queued delivery of the message by SMS (the guardian's role default), in Spanish."""
    delivery = _delivery(overrides)
    values: dict[str, Any] = {
        **delivery,
        "request_id": REQUEST_ID,
        "address": _address(delivery),
        "status": DeliveryStatus.QUEUED,
        "reason": None,
        "route": Route.ROLE_DEFAULT,
        "fallback_from": None,
        "language": "es",
    }
    values.update(overrides)
    return DeliveryRecord(**values)


_RENDERED: dict[Channel, dict[str, Any]] = {
    Channel.SMS: {
        "sms": RenderedSms(body="Para Dennis: Los formularios vencen el viernes."),
        "sender_address": SMS_SENDER,
    },
    Channel.EMAIL: {
        "email": RenderedEmail(
            subject="Nuevo mensaje de Ms. Rivera",
            text="Los formularios vencen el viernes.",
            html="<p>Los formularios vencen el viernes.</p>",
        ),
        "sender_address": EMAIL_FROM_ADDRESS,
        "sender_name": EMAIL_FROM_NAME,
    },
    Channel.APP: {"sender_name": "Ms. Rivera", "inbox_body": BODY_ES},
}


def outbound_message(**overrides: Any) -> OutboundMessage:
    """A message rendered in Spanish for its channel (SMS unless given): the SMS text, the email
    with the district as sender, or the app inbox copy with the staff sender's name."""
    delivery = _delivery(overrides)
    values: dict[str, Any] = {
        **delivery,
        "to": _address(delivery),
        "language": "es",
        **_RENDERED[delivery["channel"]],
    }
    values.update(overrides)
    return OutboundMessage(**values)


def _delivery(overrides: dict[str, Any]) -> dict[str, Any]:
    """The fields that name one delivery: message, recipient, channel and the id they make."""
    channel = overrides.get("channel", Channel.SMS)
    message_id = overrides.get("message_id", MESSAGE_ID)
    recipient_id = overrides.get("recipient_id", RECIPIENT_ID)
    return {
        "delivery_id": delivery_id_for(message_id, recipient_id, channel),
        "message_id": message_id,
        "conversation_id": CONVERSATION_ID,
        "recipient_id": recipient_id,
        "channel": channel,
    }


def _address(delivery: dict[str, Any]) -> str:
    """The default recipient's address on the delivery's channel; the app addresses people by
    their id."""
    channel: Channel = delivery["channel"]
    recipient_id: str = delivery["recipient_id"]
    return {Channel.SMS: PHONE, Channel.EMAIL: EMAIL}.get(channel, recipient_id)

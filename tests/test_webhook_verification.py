"""Webhook verification and parsing of the vendor modules: SendGrid's Signed Event Webhook
and Twilio's X-Twilio-Signature, with requests signed the way the providers sign them."""

from __future__ import annotations

import base64
import random
import string

import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from notifier.adapters.sendgrid import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SendGridEventVerifier,
    parse_events,
)
from notifier.adapters.twilio import (
    TwilioSignatureVerifier,
    parse_inbound,
    parse_status_callback,
)
from notifier.ports import WebhookRejected
from tests.fakes.signing import SendGridWebhookSigner, twilio_signature

NOW = 1_764_342_000
MAX_AGE = 300

BATCH = orjson.dumps(
    [
        {
            "email": "Parent@Example.org",
            "timestamp": NOW - 5,
            "event": "delivered",
            "sg_event_id": "ZGVsaXZlcmVk",
            "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
            "notifier_delivery_id": "dlv-1",
        }
    ]
)


@pytest.fixture(scope="module")
def signer() -> SendGridWebhookSigner:
    return SendGridWebhookSigner()


@pytest.fixture(scope="module")
def verifier(signer: SendGridWebhookSigner) -> SendGridEventVerifier:
    return SendGridEventVerifier(signer.public_key, max_age_seconds=MAX_AGE)


def headers_of(signer: SendGridWebhookSigner, body: bytes, timestamp: int = NOW) -> tuple[str, str]:
    headers = signer.sign(body, timestamp)
    return headers[SIGNATURE_HEADER], headers[TIMESTAMP_HEADER]


# SendGrid's Signed Event Webhook


def test_batch_signed_by_sendgrid_passes(
    signer: SendGridWebhookSigner, verifier: SendGridEventVerifier
) -> None:
    signature, timestamp = headers_of(signer, BATCH)

    verifier.verify(BATCH, signature, timestamp, now=NOW)


def test_sendgrids_published_test_vector_passes() -> None:
    # The key, signature, timestamp and payload every SendGrid SDK tests its helper with:
    # a signature made by SendGrid, not by our signer.
    verifier = SendGridEventVerifier(
        "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcw"
        "HBcepxo7yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA==",
        max_age_seconds=MAX_AGE,
    )
    body = b'{"category":"example_payload","event":"test_event","message_id":"message_id"}'
    signature = (
        "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nl"
        "xFDWYNH2j/0="
    )

    verifier.verify(body, signature, "1588788367", now=1588788367 + 10)
    with pytest.raises(WebhookRejected):
        verifier.verify(body + b" ", signature, "1588788367", now=1588788367 + 10)


def test_signer_posts_the_headers_sendgrid_posts(signer: SendGridWebhookSigner) -> None:
    assert set(signer.sign(BATCH, NOW)) == {
        "X-Twilio-Email-Event-Webhook-Signature",
        "X-Twilio-Email-Event-Webhook-Timestamp",
    }
    assert {SIGNATURE_HEADER, TIMESTAMP_HEADER} == set(signer.sign(BATCH, NOW))


def test_tampered_body_is_rejected(
    signer: SendGridWebhookSigner, verifier: SendGridEventVerifier
) -> None:
    signature, timestamp = headers_of(signer, BATCH)
    tampered = BATCH.replace(b'"delivered"', b'"bounce"')

    with pytest.raises(WebhookRejected, match="does not match"):
        verifier.verify(tampered, signature, timestamp, now=NOW)


def test_body_reserialized_by_a_json_parser_is_rejected(
    signer: SendGridWebhookSigner, verifier: SendGridEventVerifier
) -> None:
    # The signature covers the bytes as posted; the edge must pass the raw body.
    body = b'[ {"event": "delivered"} ]'
    signature, timestamp = headers_of(signer, body)

    with pytest.raises(WebhookRejected):
        verifier.verify(orjson.dumps(orjson.loads(body)), signature, timestamp, now=NOW)


def test_timestamp_is_part_of_what_is_signed(
    signer: SendGridWebhookSigner, verifier: SendGridEventVerifier
) -> None:
    signature, _ = headers_of(signer, BATCH, timestamp=NOW - 10)

    with pytest.raises(WebhookRejected, match="does not match"):
        verifier.verify(BATCH, signature, str(NOW), now=NOW)


def test_signature_from_another_key_is_rejected(verifier: SendGridEventVerifier) -> None:
    signature, timestamp = headers_of(SendGridWebhookSigner(), BATCH)

    with pytest.raises(WebhookRejected, match="does not match"):
        verifier.verify(BATCH, signature, timestamp, now=NOW)


@pytest.mark.parametrize(
    ("signature", "timestamp", "missing"),
    [
        pytest.param(None, str(NOW), SIGNATURE_HEADER, id="no-signature"),
        pytest.param("", str(NOW), SIGNATURE_HEADER, id="empty-signature"),
        pytest.param("sig", None, TIMESTAMP_HEADER, id="no-timestamp"),
        pytest.param("sig", "", TIMESTAMP_HEADER, id="empty-timestamp"),
        pytest.param(None, None, SIGNATURE_HEADER, id="neither"),
    ],
)
def test_missing_headers_are_rejected(
    verifier: SendGridEventVerifier, signature: str | None, timestamp: str | None, missing: str
) -> None:
    with pytest.raises(WebhookRejected, match=f"missing {missing}"):
        verifier.verify(BATCH, signature, timestamp, now=NOW)


@pytest.mark.parametrize(
    "signature",
    [
        pytest.param("not base64 at all!", id="garbage"),
        pytest.param("MEUCIQ", id="bad-padding"),
        pytest.param("MEUC\nIQ==", id="embedded-newline"),
        pytest.param("Zm9v.YmFy", id="stray-character"),
    ],
)
def test_signature_that_is_not_base64_is_rejected(
    signer: SendGridWebhookSigner, verifier: SendGridEventVerifier, signature: str
) -> None:
    _, timestamp = headers_of(signer, BATCH)

    with pytest.raises(WebhookRejected, match="not base64"):
        verifier.verify(BATCH, signature, timestamp, now=NOW)


@pytest.mark.parametrize(
    "der",
    [
        pytest.param(b"hello, sendgrid", id="not-asn1"),
        pytest.param(b"0\x06\x02\x01\x01\x02\x01", id="truncated"),
        pytest.param(b"0\x06\x02\x01\x01\x02\x01\x01\x00", id="trailing-byte"),
        pytest.param(b"\x00" * 64, id="raw-r-and-s"),
    ],
)
def test_base64_that_is_not_a_der_signature_is_rejected(
    verifier: SendGridEventVerifier, der: bytes
) -> None:
    signature = base64.b64encode(der).decode()

    with pytest.raises(WebhookRejected, match="not a DER ECDSA signature"):
        verifier.verify(BATCH, signature, str(NOW), now=NOW)


def test_well_formed_but_wrong_der_signature_is_rejected(verifier: SendGridEventVerifier) -> None:
    # SEQUENCE { INTEGER 1, INTEGER 1 }: parses, verifies nothing.
    signature = base64.b64encode(b"0\x06\x02\x01\x01\x02\x01\x01").decode()

    with pytest.raises(WebhookRejected, match="does not match"):
        verifier.verify(BATCH, signature, str(NOW), now=NOW)


@pytest.mark.parametrize(
    "timestamp",
    [
        "soon",
        "1.5e9",
        "-1764342000",
        "+1764342000",
        " 1764342000",
        "1_764_342_000",
        "١٢٣",
        "9" * 5000,
    ],
)
def test_timestamp_that_is_not_an_integer_is_rejected(
    signer: SendGridWebhookSigner, verifier: SendGridEventVerifier, timestamp: str
) -> None:
    signature, _ = headers_of(signer, BATCH)

    with pytest.raises(WebhookRejected, match="not an integer"):
        verifier.verify(BATCH, signature, timestamp, now=NOW)


def test_stale_timestamp_is_rejected_even_with_a_valid_signature(
    signer: SendGridWebhookSigner, verifier: SendGridEventVerifier
) -> None:
    signature, timestamp = headers_of(signer, BATCH, timestamp=NOW - MAX_AGE - 1)

    with pytest.raises(WebhookRejected, match="old"):
        verifier.verify(BATCH, signature, timestamp, now=NOW)


def test_future_timestamp_beyond_the_tolerance_is_rejected(
    signer: SendGridWebhookSigner, verifier: SendGridEventVerifier
) -> None:
    signature, timestamp = headers_of(signer, BATCH, timestamp=NOW + MAX_AGE + 1)

    with pytest.raises(WebhookRejected, match="future"):
        verifier.verify(BATCH, signature, timestamp, now=NOW)


def test_random_signatures_are_only_ever_rejected(verifier: SendGridEventVerifier) -> None:
    generator = random.Random(20261128)
    candidates = [
        base64.b64encode(generator.randbytes(generator.randrange(0, 80))).decode()
        for _ in range(200)
    ] + [
        "".join(generator.choices(string.printable, k=generator.randrange(1, 40)))
        for _ in range(200)
    ]

    for signature in candidates:
        with pytest.raises(WebhookRejected):
            verifier.verify(BATCH, signature, str(NOW), now=NOW)


@pytest.mark.parametrize("offset", [-MAX_AGE, MAX_AGE])
def test_timestamp_at_the_edge_of_the_window_passes(
    signer: SendGridWebhookSigner, verifier: SendGridEventVerifier, offset: int
) -> None:
    signature, timestamp = headers_of(signer, BATCH, timestamp=NOW + offset)

    verifier.verify(BATCH, signature, timestamp, now=NOW)


def test_body_that_is_not_utf8_is_rejected(
    signer: SendGridWebhookSigner, verifier: SendGridEventVerifier
) -> None:
    body = b'[{"event": "delivered", "email": "\xff@example.org"}]'
    signature, timestamp = headers_of(signer, body)

    with pytest.raises(WebhookRejected, match="UTF-8"):
        verifier.verify(body, signature, timestamp, now=NOW)


def test_non_ascii_utf8_body_passes(
    signer: SendGridWebhookSigner, verifier: SendGridEventVerifier
) -> None:
    body = '[{"event": "bounce", "reason": "Boîte pleine – 552 5.2.2"}]'.encode()
    signature, timestamp = headers_of(signer, body)

    verifier.verify(body, signature, timestamp, now=NOW)


def test_key_wrapped_over_lines_is_accepted(signer: SendGridWebhookSigner) -> None:
    wrapped = "\n".join(signer.public_key[i : i + 40] for i in range(0, len(signer.public_key), 40))
    signature, timestamp = headers_of(signer, BATCH)

    SendGridEventVerifier(wrapped, max_age_seconds=MAX_AGE).verify(
        BATCH, signature, timestamp, now=NOW
    )


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("", id="empty"),
        pytest.param("   ", id="blank"),
        pytest.param("not a key", id="garbage"),
        pytest.param(base64.b64encode(b"junk").decode(), id="not-der"),
    ],
)
def test_unusable_verification_key_fails_at_construction(key: str) -> None:
    with pytest.raises(ValueError, match="verification key"):
        SendGridEventVerifier(key, max_age_seconds=MAX_AGE)


def test_public_key_that_is_not_elliptic_curve_fails_at_construction() -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    der = rsa_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    with pytest.raises(ValueError, match="not an EC key"):
        SendGridEventVerifier(base64.b64encode(der).decode(), max_age_seconds=MAX_AGE)


@pytest.mark.parametrize("max_age", [0, -1])
def test_max_age_must_be_positive(signer: SendGridWebhookSigner, max_age: float) -> None:
    with pytest.raises(ValueError, match="max_age_seconds"):
        SendGridEventVerifier(signer.public_key, max_age_seconds=max_age)


# Parsing SendGrid's event batch


def test_events_carry_our_custom_args_and_the_send_time_message_id() -> None:
    body = orjson.dumps(
        [
            {
                "email": "Parent@Example.ORG",
                "timestamp": 1764342001,
                "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
                "event": "bounce",
                "category": ["notifier"],
                "sg_event_id": "6g4ZI7SA-xmRDv57GoPIPw==",
                "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
                "reason": "552 5.2.2 Mailbox full",
                "status": "5.2.2",
                "type": "bounce",
                "bounce_classification": "Mailbox Unavailable",
                "notifier_delivery_id": "dlv-1",
                "notifier_message_id": "msg-1042",
                "notifier_recipient_id": "guardian-9",
                "notifier_conversation_id": "conv-77",
            }
        ]
    )

    [event] = parse_events(body)

    assert event.event == "bounce"
    assert event.email == "parent@example.org"
    assert event.timestamp == 1764342001
    assert event.sg_event_id == "6g4ZI7SA-xmRDv57GoPIPw=="
    assert event.sg_message_id == "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0"
    assert event.provider_message_id == "14c5d75ce93"
    assert event.type == "bounce"
    assert event.bounce_classification == "Mailbox Unavailable"
    assert event.reason == "552 5.2.2 Mailbox full"
    assert event.status == "5.2.2"
    assert (event.delivery_id, event.message_id, event.recipient_id) == (
        "dlv-1",
        "msg-1042",
        "guardian-9",
    )


def test_provider_message_id_is_the_x_message_id_prefix_of_each_recipient() -> None:
    # X-Message-Id at send time; SendGrid appends a suffix per recipient and filter pass.
    x_message_id = "W86EgYT6SQKk0lRflfLRsA"
    body = orjson.dumps(
        [
            {"event": "processed", "sg_message_id": f"{x_message_id}.filter0425p1mdw1-13919-5C"},
            {"event": "delivered", "sg_message_id": f"{x_message_id}.filterdrecv-p3mdw1-75-0"},
            {"event": "deferred", "sg_message_id": x_message_id},
        ]
    )

    events = parse_events(body)

    assert [event.provider_message_id for event in events] == [x_message_id] * 3


def test_click_event_carries_the_url_and_response_is_kept() -> None:
    body = orjson.dumps(
        [
            {"event": "click", "url": "https://notifier.example.org/r/abc", "email": "a@b.org"},
            {"event": "deferred", "response": "400 try again later", "attempt": "2"},
        ]
    )

    click, deferred = parse_events(body)

    assert click.url == "https://notifier.example.org/r/abc"
    assert deferred.response == "400 try again later"


def test_delayed_bounce_without_our_ids_parses_with_empty_fields() -> None:
    # A bounce the receiving server sends back days later: SendGrid cannot tie it to a
    # send, so it has neither custom_args nor sg_message_id.
    body = orjson.dumps(
        [
            {
                "email": "parent@example.org",
                "event": "bounce",
                "timestamp": 1764342001,
                "sg_event_id": "YmxvY2tlZA",
                "type": "bounce",
                "reason": "550 5.1.1 user unknown",
                "status": "5.1.1",
            }
        ]
    )

    [event] = parse_events(body)

    assert event.email == "parent@example.org"
    assert event.sg_message_id is None
    assert event.provider_message_id is None
    assert (event.delivery_id, event.message_id, event.recipient_id) == (None, None, None)
    assert event.bounce_classification is None
    assert event.url is None


def test_items_that_are_not_event_objects_are_skipped() -> None:
    body = orjson.dumps(
        [
            "delivered",
            42,
            None,
            ["event", "open"],
            {"email": "a@b.org"},
            {"event": 7},
            {"event": "open", "email": "a@b.org"},
        ]
    )

    [event] = parse_events(body)

    assert event.event == "open"


def test_fields_of_the_wrong_type_are_left_empty() -> None:
    body = orjson.dumps(
        [
            {
                "event": "delivered",
                "email": ["a@b.org"],
                "timestamp": True,
                "sg_message_id": 12,
                "notifier_delivery_id": {"id": "dlv-1"},
            },
            {"event": "delivered", "timestamp": "1764342001"},
            {"event": "delivered", "timestamp": "yesterday"},
        ]
    )

    wrong, string_stamp, bad_stamp = parse_events(body)

    assert wrong.email is None
    assert wrong.timestamp is None
    assert wrong.sg_message_id is None
    assert wrong.provider_message_id is None
    assert wrong.delivery_id is None
    assert string_stamp.timestamp == 1764342001
    assert bad_stamp.timestamp is None


def test_empty_batch_has_no_events() -> None:
    assert parse_events(b"[]") == []


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"[{", id="truncated"),
        pytest.param(b"\xff\xfe[]", id="not-utf8"),
        pytest.param(b"event=delivered", id="form"),
    ],
)
def test_malformed_json_is_a_value_error(body: bytes) -> None:
    with pytest.raises(ValueError, match="not valid JSON"):
        parse_events(body)


@pytest.mark.parametrize("body", [b'{"event": "delivered"}', b'"delivered"', b"null", b"3"])
def test_json_that_is_not_an_array_is_a_value_error(body: bytes) -> None:
    with pytest.raises(ValueError, match="must be a JSON array"):
        parse_events(body)


# Twilio's X-Twilio-Signature

AUTH_TOKEN = "12345678901234567890123456789012"
STATUS_URL = "https://notifier.example.org/webhooks/twilio/status"
STATUS_FORM = {
    "MessageSid": "SM" + "0123456789abcdef" * 2,
    "SmsSid": "SM" + "0123456789abcdef" * 2,
    "MessageStatus": "Undelivered",
    "SmsStatus": "undelivered",
    "ErrorCode": "30003",
    "To": "+15555550123",
    "From": "+15005550006",
    "AccountSid": "AC" + "1234567890abcdef" * 2,
    "ApiVersion": "2010-04-01",
}


@pytest.fixture(scope="module")
def twilio_verifier() -> TwilioSignatureVerifier:
    return TwilioSignatureVerifier(AUTH_TOKEN)


def test_request_signed_by_twilio_passes(twilio_verifier: TwilioSignatureVerifier) -> None:
    signature = twilio_signature(AUTH_TOKEN, STATUS_URL, STATUS_FORM)

    twilio_verifier.verify(STATUS_URL, STATUS_FORM, signature)


def test_twilio_published_example_signature_passes() -> None:
    # The worked example of Twilio's webhook security page and its SDKs' tests: a signature
    # computed by Twilio, not by our helper.
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+12349013030",
        "Digits": "1234",
        "From": "+12349013030",
        "To": "+18005551212",
    }

    TwilioSignatureVerifier("12345").verify(
        "https://mycompany.com/myapp.php?foo=1&bar=2", params, "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    )


def test_signature_with_another_auth_token_is_rejected(
    twilio_verifier: TwilioSignatureVerifier,
) -> None:
    signature = twilio_signature("another-accounts-token", STATUS_URL, STATUS_FORM)

    with pytest.raises(WebhookRejected, match="does not match"):
        twilio_verifier.verify(STATUS_URL, STATUS_FORM, signature)


def test_changed_parameter_is_rejected(twilio_verifier: TwilioSignatureVerifier) -> None:
    signature = twilio_signature(AUTH_TOKEN, STATUS_URL, STATUS_FORM)
    forged = {**STATUS_FORM, "MessageStatus": "delivered"}

    with pytest.raises(WebhookRejected, match="does not match"):
        twilio_verifier.verify(STATUS_URL, forged, signature)


def test_dropped_parameter_is_rejected(twilio_verifier: TwilioSignatureVerifier) -> None:
    signature = twilio_signature(AUTH_TOKEN, STATUS_URL, STATUS_FORM)
    partial = {name: value for name, value in STATUS_FORM.items() if name != "ErrorCode"}

    with pytest.raises(WebhookRejected):
        twilio_verifier.verify(STATUS_URL, partial, signature)


@pytest.mark.parametrize("signature", [None, ""])
def test_missing_twilio_signature_is_rejected(
    twilio_verifier: TwilioSignatureVerifier, signature: str | None
) -> None:
    with pytest.raises(WebhookRejected, match="missing X-Twilio-Signature"):
        twilio_verifier.verify(STATUS_URL, STATUS_FORM, signature)


@pytest.mark.parametrize("signature", ["garbage", "0/KCTR6DLpKmkAf8muzZqo1nDgQ=", "é" * 28])
def test_malformed_twilio_signature_is_rejected(
    twilio_verifier: TwilioSignatureVerifier, signature: str
) -> None:
    with pytest.raises(WebhookRejected, match="does not match"):
        twilio_verifier.verify(STATUS_URL, STATUS_FORM, signature)


@pytest.mark.parametrize(
    "seen_url",
    [
        pytest.param("http://notifier.example.org/webhooks/twilio/status", id="tls-ended-at-proxy"),
        pytest.param("http://10.0.3.7:8000/webhooks/twilio/status", id="internal-host"),
        pytest.param("https://notifier.example.org/webhooks/twilio/status/", id="trailing-slash"),
        pytest.param("https://notifier.example.org/webhooks/twilio/status?x=1", id="extra-query"),
    ],
)
def test_url_other_than_the_one_twilio_signed_is_rejected(
    twilio_verifier: TwilioSignatureVerifier, seen_url: str
) -> None:
    # Behind a proxy the app sees another URL than Twilio called; the configured public URL
    # must be passed, not the one from the request.
    signature = twilio_signature(AUTH_TOKEN, STATUS_URL, STATUS_FORM)

    with pytest.raises(WebhookRejected, match="does not match"):
        twilio_verifier.verify(seen_url, STATUS_FORM, signature)


def test_default_port_in_the_url_does_not_matter(
    twilio_verifier: TwilioSignatureVerifier,
) -> None:
    signature = twilio_signature(AUTH_TOKEN, STATUS_URL, STATUS_FORM)

    twilio_verifier.verify(
        "https://notifier.example.org:443/webhooks/twilio/status", STATUS_FORM, signature
    )


def test_twilio_verifier_needs_an_auth_token() -> None:
    with pytest.raises(ValueError, match="auth_token"):
        TwilioSignatureVerifier("")


# Parsing Twilio's forms


def test_status_callback_is_parsed_with_lower_case_status_and_error_code() -> None:
    status = parse_status_callback(STATUS_FORM)

    assert status.message_sid == STATUS_FORM["MessageSid"]
    assert status.message_status == "undelivered"
    assert status.error_code == "30003"
    assert status.to == "+15555550123"
    assert status.from_ == "+15005550006"
    assert status.account_sid == STATUS_FORM["AccountSid"]


def test_status_callback_without_error_has_no_error_code() -> None:
    form = {**STATUS_FORM, "MessageStatus": "delivered", "ErrorCode": ""}

    status = parse_status_callback(form)

    assert status.message_status == "delivered"
    assert status.error_code is None


@pytest.mark.parametrize("missing", ["MessageSid", "MessageStatus"])
def test_status_callback_without_sid_or_status_is_a_value_error(missing: str) -> None:
    form = {name: value for name, value in STATUS_FORM.items() if name != missing}

    with pytest.raises(ValueError, match="MessageSid and MessageStatus"):
        parse_status_callback(form)


INBOUND_FORM = {
    "ToCountry": "US",
    "SmsMessageSid": "SM" + "fedcba9876543210" * 2,
    "NumMedia": "0",
    "SmsSid": "SM" + "fedcba9876543210" * 2,
    "SmsStatus": "received",
    "Body": " Stop ",
    "To": "+15005550006",
    "NumSegments": "1",
    "MessageSid": "SM" + "fedcba9876543210" * 2,
    "AccountSid": "AC" + "1234567890abcdef" * 2,
    "From": "+15555550123",
    "ApiVersion": "2010-04-01",
}


def test_inbound_message_is_parsed_with_the_body_as_sent() -> None:
    inbound = parse_inbound(INBOUND_FORM)

    assert inbound.message_sid == INBOUND_FORM["MessageSid"]
    assert inbound.sender == "+15555550123"
    assert inbound.to == "+15005550006"
    assert inbound.body == " Stop "


def test_inbound_message_with_only_media_has_an_empty_body() -> None:
    form = {name: value for name, value in INBOUND_FORM.items() if name != "Body"}

    assert parse_inbound({**form, "NumMedia": "1"}).body == ""


@pytest.mark.parametrize("missing", ["MessageSid", "From"])
def test_inbound_without_sid_or_sender_is_a_value_error(missing: str) -> None:
    form = {name: value for name, value in INBOUND_FORM.items() if name != missing}

    with pytest.raises(ValueError, match="MessageSid and From"):
        parse_inbound(form)


def test_signed_inbound_form_verifies_and_parses(
    twilio_verifier: TwilioSignatureVerifier,
) -> None:
    url = "https://notifier.example.org/webhooks/twilio/inbound"
    signature = twilio_signature(AUTH_TOKEN, url, INBOUND_FORM)

    twilio_verifier.verify(url, INBOUND_FORM, signature)
    assert parse_inbound(INBOUND_FORM).sender == "+15555550123"

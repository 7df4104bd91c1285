"""Phone numbers, email addresses, tokens and secrets never reach the logs in full, in any
form a log line may carry them; ids, offsets and times stay as they are."""

from __future__ import annotations

import pytest

from notifier.log_masking import mask_text, mask_value

RESUME_TOKEN = "NmIxMzQ0Y2Q6am9yZGFuLm9rYWZvckBleGFtcGxlLm9yZw.HzwGaf6ndlHoXfUR"
"""A resume link's token for jordan.okafor@example.org: its payload is the address in base64."""


@pytest.mark.parametrize(
    ("line", "masked"),
    [
        ("texting +15555550123 failed", "texting +***23 failed"),
        ("from +1 (555) 555-0177", "from +***77"),
        ("bounce for maria.gomez@example.org", "bounce for ***@example.org"),
        ("o'brien+school@mail.example.org bounced", "***@mail.example.org bounced"),
        ("('sms', '+15555550123', 'ana@example.org')", "('sms', '+***23', '***@example.org')"),
        ("partition 2 offset 1732800000000", "partition 2 offset 1732800000000"),
        (
            "delivery 6f1c2a9e-8b7d-5c4e-9a3b-2d1e0f9a8b7c",
            "delivery 6f1c2a9e-8b7d-5c4e-9a3b-2d1e0f9a8b7c",
        ),
        (
            "request 9ab426b8b97a4712b7cafb9f81e488f5 sid SM3e1b593b957fc2ce509d022d7511f9d9",
            "request 9ab426b8b97a4712b7cafb9f81e488f5 sid SM3e1b593b957fc2ce509d022d7511f9d9",
        ),
        ("sent at 2026-12-01T22:54:46.859388+00:00", "sent at 2026-12-01T22:54:46.859388+00:00"),
        (
            "topic t-7620-2f0eead9c0.conversation.send-requests",
            "topic t-7620-2f0eead9c0.conversation.send-requests",
        ),
        # Encoded as in a URL: once, in either case, or twice.
        ("phone=%2B15554717980", "phone=+***80"),
        ("to %2b15554717980 and %252B15554717923", "to +***80 and +***23"),
        ("a %2B1%20%28555%29%20555-0177 b", "a +***77 b"),
        ("jordan.okafor%40example.org", "***@example.org"),
        ("jordan.okafor%2540example.org", "***@example.org"),
        ("reply+kx3pa7v2mq@reply.springfield.example", "***@reply.springfield.example"),
        ("postgresql://notifier:hunter2@db:5432/n", "postgresql://notifier:***@db:5432/n"),
        # In base64, alone or as a resume link's payload (the signature goes with it).
        ("b64 KzE1NTU0NzE3OTgw", "b64 ***"),
        ("b64 am9yZGFuLm9rYWZvckBleGFtcGxlLm9yZw==", "b64 ***"),
        (f"link {RESUME_TOKEN} sent", "link *** sent"),
        ("Bearer ntf_0uB3kq9X-4fPz_1aZ8mW7rYt2LcVn6", "Bearer ntf_***"),
        ("Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl", "Bearer eyJ***"),
    ],
)
def test_personal_data_and_credentials_are_masked_and_nothing_else(line: str, masked: str) -> None:
    assert mask_text(line) == masked


@pytest.mark.parametrize(
    ("path", "masked"),
    [
        (f"/r/{RESUME_TOKEN}", "/r/***"),
        (f"/r/{RESUME_TOKEN}/confirm", "/r/***/confirm"),
        ("/r/not-even-a-token", "/r/***"),
        ("/webhooks/sendgrid/inbound/inbound-parse-secret", "/webhooks/sendgrid/inbound/***"),
        ("/webhooks/sendgrid/inbound", "/webhooks/sendgrid/inbound"),
        (
            "/api/v1/contact-points/email/jordan.okafor%40example.org/reset",
            "/api/v1/contact-points/email/***@example.org/reset",
        ),
        (
            "/api/v1/contact-points/sms/%2B15554717923/reset",
            "/api/v1/contact-points/sms/+***23/reset",
        ),
        # Not an address the patterns know, but still the address of the route.
        ("/api/v1/contact-points/sms/15554717923/reset", "/api/v1/contact-points/sms/***/reset"),
        (
            "/console/contact-points/email/jordan.okafor@example.org/reset/confirm",
            "/console/contact-points/email/***@example.org/reset/confirm",
        ),
        (
            "/api/v1/contact-points?phone=+15554717980&limit=50&offset=0",
            "/api/v1/contact-points?phone=+***80&limit=50&offset=0",
        ),
        ("/api/v1/contact-points?email=jordan.okafor%40example.org", None),
        ("/console/search?q=Jordan+Okafor", "/console/search?q=***"),
        ("/console/search?q=%2B15554717980", "/console/search?q=+***80"),
        ("/console/audit?offset=50&address=jordan%40example.org", None),
        ("/console/audit?address=", "/console/audit?address="),
        ("/translate?key=AIzaSyD-example&q=hello", "/translate?key=***&q=***"),
        (
            "/api/v1/recipients/guardian-dennis?limit=50",
            "/api/v1/recipients/guardian-dennis?limit=50",
        ),
    ],
)
def test_the_access_log_shows_the_route_but_no_address_token_or_secret(
    path: str, masked: str | None
) -> None:
    line = f'127.0.0.1:55078 - "GET {path} HTTP/1.1" 200'
    expected = masked or path.replace("jordan.okafor%40", "***@").replace("jordan%40", "***@")
    assert mask_text(line) == f'127.0.0.1:55078 - "GET {expected} HTTP/1.1" 200'


def test_masking_twice_changes_nothing_more() -> None:
    line = f"GET /r/{RESUME_TOKEN}?phone=%2B15554717980 for ana@example.org, +15555550123"
    once = mask_text(line)
    assert mask_text(once) == once == "GET /r/***?phone=+***80 for ***@example.org, +***23"


def test_structured_fields_are_masked_at_any_depth_and_numbers_are_kept() -> None:
    fields = {
        "to": ["+15555550123", ("ana@example.org", 3)],
        "attempt": 2,
        "retry": None,
        "ok": False,
        "why": {"detail": ValueError("no mailbox lucia@example.org")},
    }

    assert mask_value(fields) == {
        "to": ["+***23", ["***@example.org", 3]],
        "attempt": 2,
        "retry": None,
        "ok": False,
        "why": {"detail": "ValueError('no mailbox ***@example.org')"},
    }

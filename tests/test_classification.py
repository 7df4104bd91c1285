"""Vendor reports in the contract's terms: one case per table row, then the rules around the
tables (prefix matching, safe defaults for unknown input, case and whitespace, code types).

Every expectation is spelled out here rather than read from the module's tables, so a change
to a table shows up as a failing specification.
"""

from __future__ import annotations

from typing import Any

import pytest

from notifier.domain.classification import (
    SENDGRID_BOUNCE_CLASSIFICATIONS,
    SENDGRID_DROP_REASONS,
    SENDGRID_EVENTS,
    TWILIO_ERROR_CODES,
    TWILIO_FAILURE_STATUSES,
    TWILIO_STATUSES,
    classify_sendgrid,
    classify_twilio,
    classify_twilio_error,
    is_mailbox_full_text,
)
from notifier.domain.lifecycle import IGNORED, Classification, ContactEffect
from notifier.domain.model import DeliveryStatus, Reason

DELIVERED = Classification(DeliveryStatus.DELIVERED)
SENT = Classification(DeliveryStatus.SENT)
DEFERRED = Classification(DeliveryStatus.DEFERRED)
DEFERRED_MAILBOX_FULL = Classification(DeliveryStatus.DEFERRED, Reason.MAILBOX_FULL)

BOUNCED_MAILBOX_FULL = Classification(
    DeliveryStatus.BOUNCED, Reason.MAILBOX_FULL, ContactEffect.FAILING, fail_over=True
)
BOUNCED_HARD = Classification(
    DeliveryStatus.BOUNCED, Reason.HARD_BOUNCE, ContactEffect.FAILING, fail_over=True
)
BOUNCED_BLOCKED = Classification(
    DeliveryStatus.BOUNCED, Reason.BLOCKED, ContactEffect.FAILING, fail_over=True
)
BOUNCED_THIS_MESSAGE_ONLY = Classification(
    DeliveryStatus.BOUNCED, Reason.UNREACHABLE, ContactEffect.NONE, fail_over=True
)

FAILED_HARD_BOUNCE = Classification(
    DeliveryStatus.FAILED, Reason.HARD_BOUNCE, ContactEffect.FAILING, fail_over=True
)
FAILED_INVALID_ADDRESS = Classification(
    DeliveryStatus.FAILED, Reason.INVALID_ADDRESS, ContactEffect.FAILING, fail_over=True
)
FAILED_OPTED_OUT = Classification(
    DeliveryStatus.FAILED, Reason.OPTED_OUT, ContactEffect.OPTED_OUT, fail_over=True
)
FAILED_SPAM_REPORT = Classification(
    DeliveryStatus.FAILED, Reason.SPAM_REPORT, ContactEffect.OPTED_OUT, fail_over=True
)
FAILED_UNREACHABLE_IF_REPEATED = Classification(
    DeliveryStatus.FAILED, Reason.UNREACHABLE, ContactEffect.FAILING_IF_REPEATED, fail_over=True
)
FAILED_BLOCKED = Classification(
    DeliveryStatus.FAILED, Reason.BLOCKED, ContactEffect.FAILING, fail_over=True
)
FAILED_PROVIDER_ERROR = Classification(
    DeliveryStatus.FAILED, Reason.PROVIDER_ERROR, ContactEffect.NONE, fail_over=True
)

SPAM_REPORTED = Classification(None, Reason.SPAM_REPORT, ContactEffect.OPTED_OUT)
UNSUBSCRIBED = Classification(None, Reason.OPTED_OUT, ContactEffect.OPTED_OUT)
MAILBOX_WORKS = Classification(None, contact=ContactEffect.WORKS)


# --- SendGrid: one case per row ---------------------------------------------------------------

SENDGRID_ROWS: list[Any] = [
    pytest.param("processed", {}, IGNORED, id="processed"),
    pytest.param("delivered", {"reason": "250 2.0.0 OK"}, DELIVERED, id="delivered"),
    pytest.param("open", {}, IGNORED, id="open"),
    pytest.param("deferred", {"reason": "421 try again later"}, DEFERRED, id="deferred"),
    pytest.param(
        "deferred",
        {"reason": "452 4.2.2 The email account that you tried to reach is over quota"},
        DEFERRED_MAILBOX_FULL,
        id="deferred-mailbox-full",
    ),
    pytest.param(
        "bounce",
        {"type": "bounce", "bounce_classification": "Mailbox Unavailable"},
        BOUNCED_MAILBOX_FULL,
        id="bounce-mailbox-unavailable",
    ),
    pytest.param(
        "bounce",
        {"type": "bounce", "bounce_classification": "Invalid Address"},
        BOUNCED_HARD,
        id="bounce-invalid-address",
    ),
    pytest.param(
        "bounce",
        {"type": "blocked", "bounce_classification": "Reputation"},
        BOUNCED_BLOCKED,
        id="bounce-reputation",
    ),
    pytest.param(
        "bounce",
        {"type": "blocked", "bounce_classification": "Content"},
        BOUNCED_BLOCKED,
        id="bounce-content",
    ),
    pytest.param(
        "bounce",
        {"type": "blocked", "bounce_classification": "Frequency or Volume Too High"},
        BOUNCED_BLOCKED,
        id="bounce-frequency",
    ),
    pytest.param(
        "bounce",
        {"type": "blocked", "bounce_classification": "Technical Failure"},
        BOUNCED_THIS_MESSAGE_ONLY,
        id="bounce-technical",
    ),
    pytest.param(
        "bounce",
        {"type": "bounce", "bounce_classification": "Unclassified"},
        BOUNCED_THIS_MESSAGE_ONLY,
        id="bounce-unclassified",
    ),
    pytest.param(
        "bounce",
        {"type": "bounce", "reason": "550 5.7.1 rejected"},
        BOUNCED_THIS_MESSAGE_ONLY,
        id="bounce-no-classification",
    ),
    pytest.param(
        "bounce",
        {"type": "bounce", "reason": "552 5.2.2 Mailbox full", "smtp_status": "5.2.2"},
        BOUNCED_MAILBOX_FULL,
        id="bounce-no-classification-mailbox-full-text",
    ),
    pytest.param(
        "dropped", {"reason": "Bounced Address"}, FAILED_HARD_BOUNCE, id="dropped-bounced-address"
    ),
    pytest.param("dropped", {"reason": "Invalid"}, FAILED_INVALID_ADDRESS, id="dropped-invalid"),
    pytest.param(
        "dropped",
        {"reason": "Invalid Address"},
        FAILED_INVALID_ADDRESS,
        id="dropped-invalid-address",
    ),
    pytest.param(
        "dropped",
        {"reason": "Unsubscribed Address"},
        FAILED_OPTED_OUT,
        id="dropped-unsubscribed-address",
    ),
    pytest.param(
        "dropped",
        {"reason": "Spam Reporting Address"},
        FAILED_SPAM_REPORT,
        id="dropped-spam-reporting-address",
    ),
    pytest.param(
        "dropped",
        {"reason": "Recipient List over Package Quota"},
        FAILED_PROVIDER_ERROR,
        id="dropped-other-reason",
    ),
    pytest.param("spamreport", {}, SPAM_REPORTED, id="spamreport"),
    pytest.param("unsubscribe", {}, UNSUBSCRIBED, id="unsubscribe"),
    pytest.param("group_unsubscribe", {}, UNSUBSCRIBED, id="group_unsubscribe"),
    pytest.param("group_resubscribe", {}, IGNORED, id="group_resubscribe"),
    pytest.param("click", {}, MAILBOX_WORKS, id="click"),
]


@pytest.mark.parametrize(("event", "details", "expected"), SENDGRID_ROWS)
def test_sendgrid_row(event: str, details: dict[str, str], expected: Classification) -> None:
    assert classify_sendgrid(event, **details) == expected


def test_every_sendgrid_table_row_has_a_case() -> None:
    cases = {param.values[0] for param in SENDGRID_ROWS}
    assert set(SENDGRID_EVENTS) <= cases
    dropped = {param.values[1].get("reason", "").casefold() for param in SENDGRID_ROWS}
    assert set(SENDGRID_DROP_REASONS) <= dropped
    classified = " ".join(
        param.values[1].get("bounce_classification", "").casefold() for param in SENDGRID_ROWS
    )
    assert all(prefix in classified for prefix in SENDGRID_BOUNCE_CLASSIFICATIONS)


# --- SendGrid: bounces ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bounce_classification", "expected"),
    [
        pytest.param("Mailbox Unavailable", BOUNCED_MAILBOX_FULL, id="mailbox-webhook"),
        pytest.param(
            "Mailbox Unavailable - Mailbox Full", BOUNCED_MAILBOX_FULL, id="mailbox-bounces-api"
        ),
        pytest.param("Frequency or Volume Too High", BOUNCED_BLOCKED, id="frequency-webhook"),
        pytest.param("Frequency", BOUNCED_BLOCKED, id="frequency-short"),
        pytest.param("Technical Failure", BOUNCED_THIS_MESSAGE_ONLY, id="technical-webhook"),
        pytest.param("Technical", BOUNCED_THIS_MESSAGE_ONLY, id="technical-short"),
    ],
)
def test_bounce_classification_matches_either_spelling_by_prefix(
    bounce_classification: str, expected: Classification
) -> None:
    assert classify_sendgrid("bounce", bounce_classification=bounce_classification) == expected


@pytest.mark.parametrize("bounce_type", ["bounce", "blocked", None, "something-new"])
def test_bounce_type_does_not_change_the_outcome(bounce_type: str | None) -> None:
    assert (
        classify_sendgrid("bounce", type=bounce_type, bounce_classification="Invalid Address")
        == BOUNCED_HARD
    )


@pytest.mark.parametrize("bounce_classification", ["Greylisted Forever", "", "   "])
def test_unknown_bounce_classification_fails_this_message_over_without_marking_the_address(
    bounce_classification: str,
) -> None:
    assert (
        classify_sendgrid("bounce", type="bounce", bounce_classification=bounce_classification)
        == BOUNCED_THIS_MESSAGE_ONLY
    )


@pytest.mark.parametrize("bounce_classification", [None, "Unclassified", "Technical Failure"])
def test_full_mailbox_reply_marks_the_address_when_the_classification_says_nothing_about_it(
    bounce_classification: str | None,
) -> None:
    assert (
        classify_sendgrid(
            "bounce",
            type="bounce",
            bounce_classification=bounce_classification,
            reason="552 5.2.2 The email account that you tried to reach is over quota.",
        )
        == BOUNCED_MAILBOX_FULL
    )


def test_full_mailbox_reply_does_not_override_an_address_classification() -> None:
    assert (
        classify_sendgrid(
            "bounce", bounce_classification="Invalid Address", reason="552 mailbox is full"
        )
        == BOUNCED_HARD
    )


def test_message_too_large_552_is_not_a_full_mailbox() -> None:
    assert (
        classify_sendgrid("bounce", reason="552 5.3.4 Message size exceeds fixed maximum")
        == BOUNCED_THIS_MESSAGE_ONLY
    )


def test_no_bounce_classification_prefix_shadows_another() -> None:
    prefixes = list(SENDGRID_BOUNCE_CLASSIFICATIONS)
    assert not [(a, b) for a in prefixes for b in prefixes if a != b and b.startswith(a)]


# --- SendGrid: drops, deferrals, unknown events -----------------------------------------------


@pytest.mark.parametrize(
    "reason", ["Invalid SMTPAPI header", "Spam Content (if spam checker app enabled)", None, ""]
)
def test_drop_for_a_reason_about_our_request_is_a_provider_error(reason: str | None) -> None:
    assert classify_sendgrid("dropped", reason=reason) == FAILED_PROVIDER_ERROR


def test_deferral_with_mailbox_full_status_only_in_smtp_status() -> None:
    assert (
        classify_sendgrid("deferred", reason="452 try later", smtp_status="4.2.2")
        == DEFERRED_MAILBOX_FULL
    )


def test_deferral_never_fails_over_or_marks_the_address() -> None:
    result = classify_sendgrid("deferred", reason="452 4.2.2 mailbox full")
    assert result == DEFERRED_MAILBOX_FULL
    assert (result.contact, result.fail_over) == (ContactEffect.NONE, False)


@pytest.mark.parametrize("event", ["account_status_change", "bounced", "machine_opened", "", "   "])
def test_unknown_sendgrid_event_is_ignored(event: str) -> None:
    assert classify_sendgrid(event, reason="Bounced Address") == IGNORED


@pytest.mark.parametrize(
    ("event", "details", "expected"),
    [
        pytest.param(" DELIVERED ", {}, DELIVERED, id="event-upper-padded"),
        pytest.param("Group_Unsubscribe", {}, UNSUBSCRIBED, id="event-mixed-case"),
        pytest.param(
            "Bounce",
            {"bounce_classification": "  mailbox   UNAVAILABLE - mailbox full "},
            BOUNCED_MAILBOX_FULL,
            id="classification-case-and-spaces",
        ),
        pytest.param(
            "DROPPED",
            {"reason": "  spam   reporting ADDRESS "},
            FAILED_SPAM_REPORT,
            id="drop-reason-case-and-spaces",
        ),
        pytest.param(
            "deferred",
            {"reason": "Mailbox   FULL"},
            DEFERRED_MAILBOX_FULL,
            id="deferral-text-case-and-spaces",
        ),
    ],
)
def test_sendgrid_matching_ignores_case_and_whitespace(
    event: str, details: dict[str, str], expected: Classification
) -> None:
    assert classify_sendgrid(event, **details) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("452 4.2.2 Mailbox full", True, id="452-4.2.2"),
        pytest.param("552 5.2.2 over quota", True, id="552-5.2.2"),
        pytest.param("4.2.2", True, id="bare-enhanced-status"),
        pytest.param("Recipient OverQuota", True, id="overquota"),
        pytest.param("mailbox is full", True, id="mailbox-is-full"),
        pytest.param("user quota exceeded", True, id="quota-exceeded"),
        pytest.param(
            "552 Requested mail action aborted: exceeded storage allocation",
            True,
            id="exceeded-storage",
        ),
        pytest.param("452 insufficient storage for this mailbox", True, id="insufficient"),
        pytest.param("452 4.3.1 Insufficient system storage", False, id="server-storage"),
        pytest.param("452 4.5.3 Too many recipients", False, id="too-many-recipients"),
        pytest.param("421 deferred from 10.4.2.2", False, id="ip-address"),
        pytest.param("552 5.3.4 Message too big", False, id="message-too-big"),
        pytest.param("", False, id="empty"),
        pytest.param(None, False, id="none"),
    ],
)
def test_is_mailbox_full_text(text: str | None, expected: bool) -> None:
    assert is_mailbox_full_text(text) is expected


# --- Twilio: one case per row -----------------------------------------------------------------

TWILIO_ROWS: list[Any] = [
    pytest.param("accepted", None, IGNORED, id="accepted"),
    pytest.param("scheduled", None, IGNORED, id="scheduled"),
    pytest.param("queued", None, IGNORED, id="queued"),
    pytest.param("sending", None, IGNORED, id="sending"),
    pytest.param("sent", None, SENT, id="sent"),
    pytest.param("delivered", None, DELIVERED, id="delivered"),
    pytest.param("read", None, IGNORED, id="read"),
    pytest.param("canceled", None, FAILED_PROVIDER_ERROR, id="canceled"),
    pytest.param("undelivered", "21610", FAILED_OPTED_OUT, id="21610-stop"),
    pytest.param("failed", "21211", FAILED_INVALID_ADDRESS, id="21211-invalid-to"),
    pytest.param("failed", "21614", FAILED_INVALID_ADDRESS, id="21614-not-mobile"),
    pytest.param("failed", "21635", FAILED_INVALID_ADDRESS, id="21635-landline"),
    pytest.param("failed", "21612", FAILED_UNREACHABLE_IF_REPEATED, id="21612-cannot-route"),
    pytest.param("failed", "21408", FAILED_UNREACHABLE_IF_REPEATED, id="21408-region-disabled"),
    pytest.param("undelivered", "30005", FAILED_INVALID_ADDRESS, id="30005-unknown-handset"),
    pytest.param("undelivered", "30006", FAILED_INVALID_ADDRESS, id="30006-landline-carrier"),
    pytest.param(
        "undelivered", "30003", FAILED_UNREACHABLE_IF_REPEATED, id="30003-unreachable-handset"
    ),
    pytest.param("undelivered", "30004", FAILED_BLOCKED, id="30004-blocked"),
    pytest.param("undelivered", "30007", FAILED_BLOCKED, id="30007-filtered"),
    pytest.param("failed", "30001", FAILED_PROVIDER_ERROR, id="30001-queue-overflow"),
    pytest.param("undelivered", "30008", FAILED_PROVIDER_ERROR, id="30008-unknown-error"),
    pytest.param("failed", "30500", FAILED_PROVIDER_ERROR, id="30500-internal-error"),
]


@pytest.mark.parametrize(("message_status", "error_code", "expected"), TWILIO_ROWS)
def test_twilio_row(message_status: str, error_code: str | None, expected: Classification) -> None:
    assert classify_twilio(message_status, error_code) == expected


def test_every_twilio_table_row_has_a_case() -> None:
    statuses = {param.values[0] for param in TWILIO_ROWS}
    assert set(TWILIO_STATUSES) | TWILIO_FAILURE_STATUSES <= statuses
    codes = {int(param.values[1]) for param in TWILIO_ROWS if param.values[1]}
    assert set(TWILIO_ERROR_CODES) <= codes


def test_every_twilio_code_links_its_own_page() -> None:
    for code, row in TWILIO_ERROR_CODES.items():
        assert row.code == code
        assert row.doc == f"https://www.twilio.com/docs/api/errors/{code}"
        assert row.title


@pytest.mark.parametrize(
    ("error_code", "expected"),
    [
        # The codes the two tables this one replaced disagreed on: the send path knew 21612
        # and 21408 but not 21635, the status callbacks 21635 but not the other two.
        pytest.param(21612, FAILED_UNREACHABLE_IF_REPEATED, id="21612-cannot-route"),
        pytest.param(21408, FAILED_UNREACHABLE_IF_REPEATED, id="21408-region-disabled"),
        pytest.param(21635, FAILED_INVALID_ADDRESS, id="21635-landline"),
        pytest.param(21610, FAILED_OPTED_OUT, id="21610-stop"),
        pytest.param(21606, FAILED_PROVIDER_ERROR, id="unlisted-our-sender"),
        pytest.param(None, FAILED_PROVIDER_ERROR, id="missing"),
    ],
)
def test_a_refused_send_and_a_status_callback_read_a_code_alike(
    error_code: int | None, expected: Classification
) -> None:
    assert classify_twilio_error(error_code) == expected
    assert classify_twilio("failed", error_code) == expected


# --- Twilio: the rules around the table -------------------------------------------------------


@pytest.mark.parametrize("message_status", ["undelivered", "failed"])
@pytest.mark.parametrize("error_code", ["30007", 30007])
def test_undelivered_and_failed_both_become_failed(
    message_status: str, error_code: str | int
) -> None:
    assert classify_twilio(message_status, error_code) == FAILED_BLOCKED


@pytest.mark.parametrize(
    "error_code",
    [
        pytest.param(30003, id="int"),
        pytest.param("30003", id="str"),
        pytest.param(" 30003 ", id="str-padded"),
    ],
)
def test_error_code_may_be_int_or_str(error_code: str | int) -> None:
    assert classify_twilio("undelivered", error_code) == FAILED_UNREACHABLE_IF_REPEATED


@pytest.mark.parametrize(
    "error_code",
    [
        pytest.param(30034, id="unlisted-int"),
        pytest.param("63016", id="unlisted-str"),
        pytest.param(None, id="missing"),
        pytest.param("", id="empty"),
        pytest.param("30003a", id="not-a-number"),
        pytest.param("-30003", id="negative"),
    ],
)
def test_unknown_or_missing_error_code_fails_over_without_judging_the_number(
    error_code: str | int | None,
) -> None:
    assert classify_twilio("undelivered", error_code) == FAILED_PROVIDER_ERROR


@pytest.mark.parametrize("message_status", ["receiving", "received", "partially_delivered", ""])
def test_unknown_twilio_status_is_ignored(message_status: str) -> None:
    assert classify_twilio(message_status, "30003") == IGNORED


def test_error_code_is_read_only_for_a_failure() -> None:
    assert classify_twilio("delivered", "30003") == DELIVERED


@pytest.mark.parametrize(
    ("message_status", "error_code", "expected"),
    [
        pytest.param(" Delivered ", None, DELIVERED, id="delivered-padded"),
        pytest.param("UNDELIVERED", 21610, FAILED_OPTED_OUT, id="undelivered-upper"),
        pytest.param("Failed\n", "21211", FAILED_INVALID_ADDRESS, id="failed-newline"),
        pytest.param("CANCELED", None, FAILED_PROVIDER_ERROR, id="canceled-upper"),
    ],
)
def test_twilio_matching_ignores_case_and_whitespace(
    message_status: str, error_code: str | int | None, expected: Classification
) -> None:
    assert classify_twilio(message_status, error_code) == expected

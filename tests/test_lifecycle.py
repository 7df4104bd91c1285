"""After sending, on plain domain values: what a report or a refused send does to its address
(the contact point state machine), which reports fail over the other deliveries to the same
address, and our own timer's report on a delivery that never reached a final status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from notifier.domain.classification import TWILIO_ERROR_CODES
from notifier.domain.lifecycle import (
    AddressChange,
    Classification,
    ContactEffect,
    address_change,
    awaiting_final_status,
    condemns_address,
    counts_a_strike,
    deferred_too_long,
    is_overdue,
    refused_send,
)
from notifier.domain.model import Channel, ContactPoint, ContactStatus, DeliveryStatus, Reason
from tests.builders import PHONE

NOW = datetime(2026, 3, 2, 8, 30, tzinfo=UTC)
EARLIER = NOW - timedelta(days=3)

ACTIVE = ContactPoint(Channel.SMS, PHONE)
FAILING = ContactPoint(Channel.SMS, PHONE, ContactStatus.FAILING, Reason.INVALID_ADDRESS, EARLIER)
OPTED_OUT = ContactPoint(Channel.SMS, PHONE, ContactStatus.OPTED_OUT, Reason.OPTED_OUT, EARLIER)
ACTIVE_WITH_STRIKES = ContactPoint(Channel.SMS, PHONE, strikes=2)

INVALID_NUMBER = Classification(
    DeliveryStatus.FAILED, Reason.INVALID_ADDRESS, ContactEffect.FAILING, fail_over=True
)
REPLIED_STOP = Classification(
    DeliveryStatus.FAILED, Reason.OPTED_OUT, ContactEffect.OPTED_OUT, fail_over=True
)
UNREACHABLE_HANDSET = Classification(
    DeliveryStatus.FAILED, Reason.UNREACHABLE, ContactEffect.FAILING_IF_REPEATED, fail_over=True
)
TRACKED_CLICK = Classification(None, contact=ContactEffect.WORKS)
DELIVERED = Classification(DeliveryStatus.DELIVERED)
THIS_MESSAGE_ONLY = Classification(
    DeliveryStatus.FAILED, Reason.PROVIDER_ERROR, ContactEffect.NONE, fail_over=True
)


def change(
    current: ContactPoint, classification: Classification, *, strikes: int = 0
) -> AddressChange:
    return address_change(
        current, classification, strikes=strikes, strikes_to_fail=3, occurred_at=NOW
    )


def now_as(status: ContactStatus, reason: Reason) -> AddressChange:
    return AddressChange(ContactPoint(Channel.SMS, PHONE, status, reason, NOW))


# The contact point state machine


def test_an_invalid_number_marks_an_active_address_failing_with_its_reason_and_time() -> None:
    assert change(ACTIVE, INVALID_NUMBER) == now_as(ContactStatus.FAILING, Reason.INVALID_ADDRESS)


def test_a_failing_address_keeps_the_reason_and_time_it_first_failed_with() -> None:
    blocked = Classification(
        DeliveryStatus.FAILED, Reason.BLOCKED, ContactEffect.FAILING, fail_over=True
    )

    assert change(FAILING, blocked) == AddressChange()


def test_a_failure_never_turns_an_opt_out_into_failing() -> None:
    assert change(OPTED_OUT, INVALID_NUMBER) == AddressChange()


@pytest.mark.parametrize("current", [ACTIVE, FAILING], ids=["active", "failing"])
def test_a_stop_opts_out_an_active_or_failing_address(current: ContactPoint) -> None:
    assert change(current, REPLIED_STOP) == now_as(ContactStatus.OPTED_OUT, Reason.OPTED_OUT)


def test_a_stop_leaves_an_opted_out_address_as_it_was_opted_out() -> None:
    assert change(OPTED_OUT, REPLIED_STOP) == AddressChange()


def test_the_address_reason_is_the_one_the_report_gives_the_address() -> None:
    # e.g. our timer: the message failed as deferred_too_long, the mailbox is full.
    report = Classification(
        DeliveryStatus.FAILED,
        Reason.DEFERRED_TOO_LONG,
        ContactEffect.FAILING,
        fail_over=True,
        contact_reason=Reason.MAILBOX_FULL,
    )

    assert change(ACTIVE, report) == now_as(ContactStatus.FAILING, Reason.MAILBOX_FULL)


@pytest.mark.parametrize("strikes", [1, 2])
def test_an_unreachable_handset_below_the_strikes_to_fail_leaves_the_address_active(
    strikes: int,
) -> None:
    assert change(ACTIVE, UNREACHABLE_HANDSET, strikes=strikes) == AddressChange()


@pytest.mark.parametrize("strikes", [3, 4])
def test_an_unreachable_handset_at_the_strikes_to_fail_marks_the_address_failing(
    strikes: int,
) -> None:
    assert change(ACTIVE, UNREACHABLE_HANDSET, strikes=strikes) == now_as(
        ContactStatus.FAILING, Reason.UNREACHABLE
    )


def test_a_tracked_click_on_a_failing_address_is_the_persons_own_reset() -> None:
    assert change(FAILING, TRACKED_CLICK) == AddressChange(person_reset=True)


@pytest.mark.parametrize("current", [ACTIVE, OPTED_OUT], ids=["active", "opted-out"])
def test_a_tracked_click_lifts_nothing_but_a_failing_address(current: ContactPoint) -> None:
    assert change(current, TRACKED_CLICK) == AddressChange()


def test_a_delivery_to_an_active_address_clears_its_strikes() -> None:
    assert change(ACTIVE_WITH_STRIKES, DELIVERED) == AddressChange(ContactPoint(Channel.SMS, PHONE))


@pytest.mark.parametrize(
    "current",
    [ACTIVE, FAILING, OPTED_OUT],
    ids=["no-strikes", "failing", "opted-out"],
)
def test_a_delivery_otherwise_changes_nothing(current: ContactPoint) -> None:
    # A late "delivered" doesn't lift a failing or opted-out address: only a reset does.
    assert change(current, DELIVERED) == AddressChange()


def test_a_failure_of_this_message_only_changes_nothing() -> None:
    assert change(ACTIVE_WITH_STRIKES, THIS_MESSAGE_ONLY) == AddressChange()


def test_only_a_repeated_kind_of_failure_counts_a_strike() -> None:
    assert counts_a_strike(UNREACHABLE_HANDSET)
    assert not counts_a_strike(INVALID_NUMBER)
    assert not counts_a_strike(DELIVERED)


# A refused send


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        pytest.param(Reason.INVALID_ADDRESS, INVALID_NUMBER, id="invalid-address"),
        pytest.param(Reason.OPTED_OUT, REPLIED_STOP, id="opted-out"),
        pytest.param(Reason.UNREACHABLE, UNREACHABLE_HANDSET, id="unreachable"),
        pytest.param(
            Reason.BLOCKED,
            Classification(
                DeliveryStatus.FAILED, Reason.BLOCKED, ContactEffect.FAILING, fail_over=True
            ),
            id="blocked",
        ),
    ],
)
def test_a_refused_send_says_what_its_reason_says_about_the_address(
    reason: Reason, expected: Classification
) -> None:
    assert refused_send(reason) == expected


@pytest.mark.parametrize("reason", [Reason.PROVIDER_ERROR, None])
def test_a_send_refused_for_our_own_fault_says_nothing_about_the_address(
    reason: Reason | None,
) -> None:
    assert refused_send(reason) is None


@pytest.mark.parametrize("code", sorted(TWILIO_ERROR_CODES))
def test_a_twilio_code_does_the_same_to_the_address_refused_at_send_or_reported_later(
    code: int,
) -> None:
    # The refused send carries only the row's reason (PermanentProviderError): what that
    # reason says about the address must be what the row says.
    reported = TWILIO_ERROR_CODES[code].outcome
    refused = refused_send(reported.reason)

    assert (refused.contact if refused else ContactEffect.NONE) is reported.contact


# The other deliveries to the same address


@pytest.mark.parametrize(
    ("classification", "condemns"),
    [
        pytest.param(INVALID_NUMBER, True, id="failing"),
        pytest.param(REPLIED_STOP, True, id="opted-out"),
        pytest.param(UNREACHABLE_HANDSET, False, id="failing-if-repeated"),
        pytest.param(THIS_MESSAGE_ONLY, False, id="this-message-only"),
        pytest.param(
            Classification(None, Reason.SPAM_REPORT, ContactEffect.OPTED_OUT),
            False,
            id="opted-out-without-failing-over",
        ),
    ],
)
def test_only_a_failover_for_a_broken_address_condemns_it_for_the_whole_message(
    classification: Classification, condemns: bool
) -> None:
    assert condemns_address(classification) is condemns


# Our timer


def test_a_delivery_deferred_too_long_fails_over_with_a_strike_as_unreachable() -> None:
    assert deferred_too_long(None) == Classification(
        DeliveryStatus.FAILED,
        Reason.DEFERRED_TOO_LONG,
        ContactEffect.FAILING_IF_REPEATED,
        fail_over=True,
        contact_reason=Reason.UNREACHABLE,
    )


def test_a_mailbox_deferred_as_full_too_long_strikes_the_address_as_full() -> None:
    classification = deferred_too_long(Reason.MAILBOX_FULL)

    assert classification.reason is Reason.DEFERRED_TOO_LONG
    assert classification.address_reason is Reason.MAILBOX_FULL


def test_texts_wait_for_a_final_status_only_when_status_callbacks_are_configured() -> None:
    assert awaiting_final_status(sms_final_status_expected=False) == (
        (Channel.EMAIL, DeliveryStatus.DEFERRED),
    )
    assert awaiting_final_status(sms_final_status_expected=True) == (
        (Channel.EMAIL, DeliveryStatus.DEFERRED),
        (Channel.SMS, DeliveryStatus.SENT),
    )


@pytest.mark.parametrize(
    ("sent_at", "overdue"),
    [
        pytest.param(NOW - timedelta(minutes=31), True, id="past-the-limit"),
        pytest.param(NOW - timedelta(minutes=30), True, id="at-the-limit"),
        pytest.param(NOW - timedelta(minutes=29), False, id="within-the-limit"),
        pytest.param(None, False, id="never-sent"),
    ],
)
def test_a_delivery_is_overdue_once_it_has_waited_its_limit(
    sent_at: datetime | None, overdue: bool
) -> None:
    assert is_overdue(sent_at, timedelta(minutes=30), NOW) is overdue

"""The contract's resolution rules 1-6, admission and deterministic ids, on plain domain values."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from notifier.domain.admission import admit
from notifier.domain.errors import RejectionCode, RequestRejected
from notifier.domain.identity import delivery_id_for, event_id_for
from notifier.domain.model import (
    Channel,
    ContactPoint,
    ContactStatus,
    DeliveryStatus,
    Reason,
    Role,
    Route,
)
from notifier.domain.resolution import (
    ChannelChoice,
    ContactPoints,
    PlannedDelivery,
    alternate_channel,
    choose_channel,
    choose_language,
    fallback_channel,
    message_text,
    original_text,
    plan_fallback,
    plan_recipient,
    recipients_to_notify,
)
from tests.builders import EMAIL, PHONE, district, recipient, send_request


def failing(channel: Channel, address: str, reason: Reason) -> ContactPoints:
    return {(channel, address): ContactPoint(channel, address, ContactStatus.FAILING, reason)}


def opted_out(channel: Channel, address: str) -> ContactPoints:
    return {(channel, address): ContactPoint(channel, address, ContactStatus.OPTED_OUT)}


def notification(plan_deliveries: tuple[PlannedDelivery, ...]) -> PlannedDelivery:
    """The one delivery beside the app inbox copy."""
    [external] = [d for d in plan_deliveries if d.channel is not Channel.APP]
    return external


# Rule 1: the channel


def test_preferred_channel_is_used_when_the_person_has_it() -> None:
    choice = choose_channel(recipient(preferred_channel=Channel.EMAIL), district())

    assert choice == ChannelChoice(Channel.EMAIL, Route.PREFERRED)


def test_preferred_channel_without_that_contact_point_falls_through_to_role_default() -> None:
    person = recipient(preferred_channel=Channel.EMAIL, email=None)

    assert choose_channel(person, district()) == ChannelChoice(Channel.SMS, Route.ROLE_DEFAULT)


def test_guardian_with_both_contacts_gets_sms_by_role_default() -> None:
    choice = choose_channel(recipient(role=Role.GUARDIAN), district(default_channel=Channel.EMAIL))

    assert choice == ChannelChoice(Channel.SMS, Route.ROLE_DEFAULT)


def test_role_default_without_that_contact_point_falls_through() -> None:
    person = recipient(role=Role.GUARDIAN, phone=None)

    assert choose_channel(person, district()) == ChannelChoice(Channel.EMAIL, Route.ONLY_CONTACT)


def test_district_without_role_channels_gives_guardian_with_both_the_district_default() -> None:
    choice = choose_channel(
        recipient(role=Role.GUARDIAN),
        district(role_channels={}, default_channel=Channel.EMAIL),
    )

    assert choice == ChannelChoice(Channel.EMAIL, Route.DISTRICT_DEFAULT)


@pytest.mark.parametrize("default_channel", [Channel.SMS, Channel.EMAIL])
def test_staff_with_both_contacts_gets_the_district_default_channel(
    default_channel: Channel,
) -> None:
    choice = choose_channel(
        recipient(id="staff-4", role=Role.STAFF), district(default_channel=default_channel)
    )

    assert choice == ChannelChoice(default_channel, Route.DISTRICT_DEFAULT)


def test_person_with_only_email_gets_email_as_only_contact() -> None:
    choice = choose_channel(recipient(role=Role.STAFF, phone=None), district())

    assert choice == ChannelChoice(Channel.EMAIL, Route.ONLY_CONTACT)


def test_person_with_only_phone_gets_sms_as_only_contact() -> None:
    choice = choose_channel(
        recipient(role=Role.STAFF, email=None), district(default_channel=Channel.EMAIL)
    )

    assert choice == ChannelChoice(Channel.SMS, Route.ONLY_CONTACT)


def test_person_without_phone_or_email_is_told_in_the_app_only() -> None:
    person = recipient(phone=None, email=None)

    assert choose_channel(person, district()) is None
    plan = plan_recipient(person, district(), {})
    assert plan.deliveries == (PlannedDelivery(Channel.APP, person.id, Route.APP_ONLY),)


def test_preferred_app_gives_only_the_inbox_delivery_routed_as_preferred() -> None:
    person = recipient(preferred_channel=Channel.APP)

    assert choose_channel(person, district()) == ChannelChoice(Channel.APP, Route.PREFERRED)
    plan = plan_recipient(person, district(), {})
    assert plan.deliveries == (PlannedDelivery(Channel.APP, person.id, Route.PREFERRED),)


def test_preferred_app_without_the_app_falls_through_to_role_default() -> None:
    person = recipient(preferred_channel=Channel.APP, app=False)

    assert choose_channel(person, district()) == ChannelChoice(Channel.SMS, Route.ROLE_DEFAULT)


# Rule 2: the alternate channel


def test_alternate_of_sms_is_email_when_the_person_has_an_email() -> None:
    assert alternate_channel(recipient(), Channel.SMS) is Channel.EMAIL


def test_alternate_of_email_is_sms_when_the_person_has_a_phone() -> None:
    assert alternate_channel(recipient(), Channel.EMAIL) is Channel.SMS


def test_there_is_no_alternate_without_the_other_contact_point() -> None:
    assert alternate_channel(recipient(email=None), Channel.SMS) is None
    assert alternate_channel(recipient(phone=None), Channel.EMAIL) is None


def test_the_app_has_no_alternate() -> None:
    assert alternate_channel(recipient(), Channel.APP) is None


# Rules 2, 3 and 6 after sending: failing over


@pytest.mark.parametrize(
    ("channel", "expected"),
    [(Channel.SMS, Channel.EMAIL), (Channel.EMAIL, Channel.SMS), (Channel.APP, None)],
)
def test_a_delivery_fails_over_to_the_other_of_sms_and_email(
    channel: Channel, expected: Channel | None
) -> None:
    assert fallback_channel(channel, fallback_from=None) is expected


def test_a_fallback_never_fails_over_again() -> None:
    assert fallback_channel(Channel.EMAIL, fallback_from=Channel.SMS) is None


def test_a_fallback_to_an_active_address_is_sent() -> None:
    planned = plan_fallback(
        Channel.SMS, ContactPoint(Channel.EMAIL, EMAIL), Route.FAILOVER_BOUNCE, muted=False
    )

    assert planned == PlannedDelivery(
        Channel.EMAIL, EMAIL, Route.FAILOVER_BOUNCE, fallback_from=Channel.SMS
    )
    assert planned.needs_sending


def test_a_fallback_for_someone_who_muted_the_conversation_is_suppressed_as_muted() -> None:
    # Muted wins over the address's own state: it is the person's latest word.
    point = ContactPoint(Channel.EMAIL, EMAIL, ContactStatus.FAILING, Reason.MAILBOX_FULL)

    planned = plan_fallback(Channel.SMS, point, Route.FAILOVER_REJECTED, muted=True)

    assert (planned.outcome, planned.reason) == (DeliveryStatus.SUPPRESSED, Reason.MUTED)
    assert (planned.channel, planned.fallback_from) == (Channel.EMAIL, Channel.SMS)


def test_a_fallback_to_an_opted_out_address_is_suppressed_as_opted_out() -> None:
    point = ContactPoint(Channel.SMS, PHONE, ContactStatus.OPTED_OUT, Reason.OPTED_OUT)

    planned = plan_fallback(Channel.EMAIL, point, Route.FAILOVER_BOUNCE, muted=False)

    assert planned == PlannedDelivery(
        Channel.SMS,
        PHONE,
        Route.FAILOVER_BOUNCE,
        Channel.EMAIL,
        DeliveryStatus.SUPPRESSED,
        Reason.OPTED_OUT,
    )


def test_a_fallback_to_a_failing_address_is_skipped_with_the_address_reason() -> None:
    point = ContactPoint(Channel.EMAIL, EMAIL, ContactStatus.FAILING, Reason.MAILBOX_FULL)

    planned = plan_fallback(Channel.SMS, point, Route.FAILOVER_DEFERRED_TOO_LONG, muted=False)

    assert planned == PlannedDelivery(
        Channel.EMAIL,
        EMAIL,
        Route.FAILOVER_DEFERRED_TOO_LONG,
        Channel.SMS,
        DeliveryStatus.SKIPPED,
        Reason.MAILBOX_FULL,
    )


# Rule 3: failing and opted-out contact points


def test_active_primary_is_used_as_chosen() -> None:
    plan = plan_recipient(recipient(), district(), {})

    assert notification(plan.deliveries) == PlannedDelivery(Channel.SMS, PHONE, Route.ROLE_DEFAULT)


def test_failing_primary_falls_back_to_the_alternate_channel() -> None:
    points = failing(Channel.SMS, PHONE, Reason.UNREACHABLE)

    delivery = notification(plan_recipient(recipient(), district(), points).deliveries)

    assert delivery == PlannedDelivery(
        Channel.EMAIL, EMAIL, Route.CONTACT_POINT_FAILING, fallback_from=Channel.SMS
    )
    assert delivery.needs_sending


def test_opted_out_primary_is_recorded_suppressed_and_the_alternate_is_used() -> None:
    points = opted_out(Channel.SMS, PHONE)

    sms, email, inbox = plan_recipient(recipient(), district(), points).deliveries

    assert (sms.channel, sms.outcome, sms.reason) == (
        Channel.SMS,
        DeliveryStatus.SUPPRESSED,
        Reason.OPTED_OUT,
    )
    assert email.channel is Channel.EMAIL
    assert email.needs_sending
    assert email.route is Route.CONTACT_POINT_FAILING
    assert email.fallback_from is Channel.SMS
    assert inbox.channel is Channel.APP


def test_opted_out_primary_without_alternate_is_suppressed_as_opted_out() -> None:
    person = recipient(email=None)

    delivery = notification(
        plan_recipient(person, district(), opted_out(Channel.SMS, PHONE)).deliveries
    )

    assert delivery.channel is Channel.SMS
    assert delivery.address == PHONE
    assert delivery.outcome is DeliveryStatus.SUPPRESSED
    assert delivery.reason is Reason.OPTED_OUT
    assert not delivery.needs_sending


def test_failing_primary_with_failing_alternate_is_skipped_with_the_primary_reason() -> None:
    points = {
        **failing(Channel.SMS, PHONE, Reason.BLOCKED),
        **failing(Channel.EMAIL, EMAIL, Reason.MAILBOX_FULL),
    }

    delivery = notification(plan_recipient(recipient(), district(), points).deliveries)

    assert delivery.channel is Channel.SMS
    assert delivery.route is Route.ROLE_DEFAULT
    assert delivery.fallback_from is None
    assert delivery.outcome is DeliveryStatus.SKIPPED
    assert delivery.reason is Reason.BLOCKED


def test_failing_primary_without_alternate_is_skipped_with_its_reason() -> None:
    person = recipient(role=Role.STAFF, phone=None)

    delivery = notification(
        plan_recipient(
            person, district(), failing(Channel.EMAIL, EMAIL, Reason.HARD_BOUNCE)
        ).deliveries
    )

    assert delivery.outcome is DeliveryStatus.SKIPPED
    assert delivery.reason is Reason.HARD_BOUNCE


def test_failing_shared_inbox_fails_over_both_people_who_share_it() -> None:
    shared_email = "park.family@example.org"
    dennis = recipient(id="guardian-9", role=Role.STAFF, phone="+15555550123", email=shared_email)
    mina = recipient(id="guardian-10", role=Role.STAFF, phone="+15555550124", email=shared_email)
    points = failing(Channel.EMAIL, shared_email, Reason.MAILBOX_FULL)
    springfield = district(role_channels={}, default_channel=Channel.EMAIL)

    deliveries = [
        notification(plan_recipient(person, springfield, points).deliveries)
        for person in (dennis, mina)
    ]

    assert deliveries == [
        PlannedDelivery(
            Channel.SMS, "+15555550123", Route.CONTACT_POINT_FAILING, fallback_from=Channel.EMAIL
        ),
        PlannedDelivery(
            Channel.SMS, "+15555550124", Route.CONTACT_POINT_FAILING, fallback_from=Channel.EMAIL
        ),
    ]


def test_failing_address_of_someone_else_does_not_affect_this_person() -> None:
    points = failing(Channel.SMS, "+15555559999", Reason.UNREACHABLE)

    delivery = notification(plan_recipient(recipient(), district(), points).deliveries)

    assert delivery == PlannedDelivery(Channel.SMS, PHONE, Route.ROLE_DEFAULT)


# Rule 4: the language


def test_listed_language_is_used() -> None:
    assert choose_language("vi", district()) == "vi"


def test_listed_language_matches_case_insensitively_and_returns_district_spelling() -> None:
    assert choose_language("zh-hans", district()) == "zh-Hans"


def test_unlisted_language_falls_back_to_the_district_default() -> None:
    assert choose_language("fr", district(default_language="es")) == "es"


def test_no_language_falls_back_to_the_district_default() -> None:
    assert choose_language(None, district(default_language="es")) == "es"


def test_plan_carries_the_resolved_language() -> None:
    plan = plan_recipient(recipient(language="fr"), district(default_language="en"), {})

    assert plan.language == "en"


def test_message_text_in_the_original_language_is_the_body() -> None:
    text = message_text(send_request(language="en"), "en")

    assert text is not None
    assert text.text == "Field trip forms are due Friday."
    assert text.language == "en"
    assert not text.in_original_language


def test_message_text_uses_a_supplied_translation() -> None:
    text = message_text(send_request(), "es")

    assert text is not None
    assert text.text == "Los formularios de la excursión vencen el viernes."
    assert text.language == "es"
    assert not text.in_original_language


def test_message_text_matches_supplied_translation_case_insensitively() -> None:
    request = send_request(translations={"zh-hans": "实地考察表格周五截止。"})

    text = message_text(request, "zh-Hans")

    assert text is not None
    assert text.text == "实地考察表格周五截止。"


def test_message_text_without_a_translation_is_none() -> None:
    assert message_text(send_request(translations={}), "vi") is None


def test_original_text_is_marked_as_in_its_original_language() -> None:
    text = original_text(send_request(language="en"))

    assert text.text == "Field trip forms are due Friday."
    assert text.language == "en"
    assert text.in_original_language


# Rule 6: the app inbox


def test_app_inbox_copy_is_planned_beside_an_external_delivery() -> None:
    person = recipient()

    plan = plan_recipient(person, district(), {})

    assert plan.deliveries == (
        PlannedDelivery(Channel.SMS, PHONE, Route.ROLE_DEFAULT),
        PlannedDelivery(Channel.APP, person.id, Route.APP_INBOX),
    )


def test_app_inbox_copy_is_planned_even_when_the_notification_is_suppressed() -> None:
    person = recipient(email=None)

    plan = plan_recipient(person, district(), opted_out(Channel.SMS, PHONE))

    assert plan.deliveries[-1] == PlannedDelivery(Channel.APP, person.id, Route.APP_INBOX)
    assert plan.deliveries[-1].needs_sending


# Who is notified


def test_sender_is_not_notified_of_their_own_message() -> None:
    request = send_request(recipient_ids=("guardian-9", "staff-3", "staff-4"))

    assert recipients_to_notify(request) == ("guardian-9", "staff-4")


def test_repeated_recipients_are_notified_once_in_first_listed_order() -> None:
    request = send_request(recipient_ids=("staff-4", "guardian-9", "staff-4", "guardian-10"))

    assert recipients_to_notify(request) == ("staff-4", "guardian-9", "guardian-10")


# Admission


def test_request_for_unknown_district_is_rejected() -> None:
    with pytest.raises(RequestRejected) as rejected:
        admit(send_request(district_id="d-nowhere"), None)

    assert rejected.value.code is RejectionCode.UNKNOWN_DISTRICT
    assert "d-nowhere" in rejected.value.detail


def test_request_with_more_recipients_than_the_district_allows_is_rejected() -> None:
    request = send_request(recipient_ids=tuple(f"guardian-{n}" for n in range(4)))

    with pytest.raises(RequestRejected) as rejected:
        admit(request, district(max_recipients=3))

    assert rejected.value.code is RejectionCode.TOO_MANY_RECIPIENTS


def test_request_with_exactly_the_district_limit_is_admitted() -> None:
    springfield = district(max_recipients=3)
    request = send_request(recipient_ids=tuple(f"guardian-{n}" for n in range(3)))

    assert admit(request, springfield) is springfield


# Deterministic ids


def test_same_delivery_always_gets_the_same_id() -> None:
    first = delivery_id_for("msg-1042", "guardian-9", Channel.SMS)

    assert first == delivery_id_for("msg-1042", "guardian-9", Channel.SMS)


def test_delivery_id_differs_by_channel_recipient_and_message() -> None:
    ids = {
        delivery_id_for("msg-1042", "guardian-9", Channel.SMS),
        delivery_id_for("msg-1042", "guardian-9", Channel.EMAIL),
        delivery_id_for("msg-1042", "guardian-10", Channel.SMS),
        delivery_id_for("msg-1043", "guardian-9", Channel.SMS),
    }

    assert len(ids) == 4


def test_event_id_is_stable_per_delivery_and_status() -> None:
    delivery = delivery_id_for("msg-1042", "guardian-9", Channel.SMS)

    assert event_id_for(delivery, DeliveryStatus.SENT) == event_id_for(
        delivery, DeliveryStatus.SENT
    )
    assert event_id_for(delivery, DeliveryStatus.SENT) != event_id_for(
        delivery, DeliveryStatus.DELIVERED
    )


def test_someone_who_muted_the_conversation_gets_the_inbox_copy_only() -> None:
    sms, inbox = plan_recipient(recipient(), district(), {}, muted=True).deliveries

    assert (sms.channel, sms.outcome, sms.reason) == (
        Channel.SMS,
        DeliveryStatus.SUPPRESSED,
        Reason.MUTED,
    )
    assert not sms.needs_sending
    assert inbox.channel is Channel.APP
    assert inbox.needs_sending


@pytest.mark.parametrize(
    ("made", "name"),
    [
        (
            lambda: delivery_id_for("msg-1042", "guardian-9", Channel.SMS),
            "delivery\x1fmsg-1042\x1fguardian-9\x1fsms",
        ),
        (
            lambda: event_id_for("0f5c6a52-7a0e-4b5e-9d1f-6f3c2a1b9e77", DeliveryStatus.SENT),
            "event\x1f0f5c6a52-7a0e-4b5e-9d1f-6f3c2a1b9e77\x1fsent",
        ),
        (
            lambda: delivery_id_for("é表🎉", "👨‍👩‍👧", Channel.EMAIL),
            "delivery\x1fé表🎉\x1f👨‍👩‍👧\x1femail",
        ),
    ],
)
def test_ids_are_the_uuid5_they_always_were(made: Callable[[], str], name: str) -> None:
    # Stored deliveries are found again by these ids: they must never change.
    namespace = uuid.UUID("6f1d3c1e-4f2b-5a7e-9c0d-2b8e1f4a7c55")

    assert made() == str(uuid.uuid5(namespace, name))

"""After sending: provider reports, on the store's ports in memory (tests/test_store.py tests
their SQL), move deliveries forward, mark addresses failing or opted out, fail messages over
to the other channel, and resets bring the preferred channel back. Providers, the event
stream and the provider's suppression list are in-memory fakes."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import pytest

from notifier.adapters.catalogs import GettextCatalogs
from notifier.domain.circuit import CircuitBreaker
from notifier.domain.classification import classify_sendgrid, classify_twilio
from notifier.domain.identity import delivery_id_for
from notifier.domain.lifecycle import Classification, ProviderReport
from notifier.domain.model import (
    Channel,
    ContactPoint,
    ContactStatus,
    DeliveryEvent,
    DeliveryStatus,
    OutboundMessage,
    Reason,
    Recipient,
    Route,
    Sender,
    SendRequest,
)
from notifier.domain.records import DeliveryRecord
from notifier.domain.resolution import contact_point
from notifier.domain.resume_links import read_token
from notifier.handlers import DeliveryDependencies, RetryPolicy, deliver_request
from notifier.handlers.contact_points import (
    Actor,
    ContactPointDependencies,
    ResetRefused,
    SmsKeyword,
    SuppressionOutcome,
    apply_sms_keyword,
    reset_contact_point,
    resume_email,
    resume_link_target,
    sms_keyword,
)
from notifier.handlers.delivery import ResumeLinks
from notifier.handlers.follow_up import (
    FollowUpDependencies,
    FollowUpPolicy,
    ReportOutcome,
    deliver_and_fail_over,
    fail_over_overdue,
    record_provider_report,
)
from notifier.metrics import PrometheusMetrics
from notifier.ports import ProviderError, TransientProviderError
from tests.builders import BODY_ES, EMAIL, PHONE, district, recipient, send_request
from tests.fakes.memory_store import MemoryStorage, delivery_ports
from tests.fakes.ports import RecordingEvents, ScriptedSender, SteppingClock
from tests.fakes.suppressions import RecordingSuppressions

LUCIA = "guardian-lucia"
LUCIA_PHONE = "+15555550188"
LUCIA_EMAIL = "lucia.mendez@home.example"
DENNIS = "guardian-9"  # builders' guardian: Spanish, texted by the role default, has an email
SUPPORT = Actor("alice", "support")

FULL_INBOX = classify_sendgrid("bounce", type="bounce", bounce_classification="Mailbox Unavailable")
UNKNOWN_HANDSET = classify_twilio("undelivered", 30005)
UNREACHABLE_HANDSET = classify_twilio("undelivered", 30003)
REPLIED_STOP = classify_twilio("undelivered", 21610)
MAILBOX_FULL_DEFERRAL = classify_sendgrid("deferred", reason="452 4.2.2 mailbox full")

RESUME_LINKS = ResumeLinks(
    "https://notify.springfield.example", b"resume-secret", timedelta(days=7)
)
RESUME_LINK = re.compile(r"https://notify\.springfield\.example/r/(\S+)")


def email_first(recipient_id: str = LUCIA, **overrides: Any) -> Recipient:
    """A Spanish-speaking guardian who prefers email and also has a phone."""
    fields = {
        "display_name": "Lucía Méndez",
        "first_name": "Lucía",
        "language": "es",
        "preferred_channel": Channel.EMAIL,
        "phone": LUCIA_PHONE,
        "email": LUCIA_EMAIL,
        **overrides,
    }
    return recipient(id=recipient_id, **fields)


def request(message_id: str, *recipient_ids: str) -> SendRequest:
    """Ms. Rivera's field-trip message (with its Spanish translation) to these recipients."""
    return send_request(
        request_id=f"req-{message_id}",
        message_id=message_id,
        sender=Sender("staff-rivera", "Ms. Rivera", "staff"),
        recipient_ids=recipient_ids,
    )


@pytest.fixture
def store() -> MemoryStorage:
    """The store's ports in memory: these tests are about the use cases, not the SQL
    (tests/test_store.py tests that on both databases)."""
    return MemoryStorage(SteppingClock())


@dataclass
class World:
    store: MemoryStorage
    sms: ScriptedSender
    email: ScriptedSender
    events: RecordingEvents
    clock: SteppingClock
    suppressions: RecordingSuppressions
    deps: FollowUpDependencies

    async def deliver(self, message_id: str, *recipient_ids: str) -> None:
        await deliver_request(request(message_id, *recipient_ids), self.deps.delivery)

    async def sendgrid(self, classification: Classification, **fields: Any) -> ReportOutcome:
        return await self._report("sendgrid", Channel.EMAIL, classification, fields)

    async def twilio(self, classification: Classification, **fields: Any) -> ReportOutcome:
        return await self._report("twilio", Channel.SMS, classification, fields)

    async def _report(
        self,
        provider: str,
        channel: Channel,
        classification: Classification,
        fields: dict[str, Any],
    ) -> ReportOutcome:
        fields.setdefault("occurred_at", self.clock.now())
        report = ProviderReport(provider, channel, classification, **fields)
        return await record_provider_report(report, self.deps)

    async def delivery(
        self, message_id: str, recipient_id: str, channel: Channel
    ) -> DeliveryRecord:
        found = await self.store.ledger.delivery(delivery_id_for(message_id, recipient_id, channel))
        assert found is not None, f"no {channel} delivery of {message_id} to {recipient_id}"
        return found

    async def point(self, channel: Channel, address: str) -> ContactPoint:
        points = await self.store.contact_points.contact_points([(channel, address)])
        return contact_point(points, channel, address)

    def published(self, message_id: str, channel: Channel) -> list[DeliveryEvent]:
        return [
            e for e in self.events.published if e.message_id == message_id and e.channel is channel
        ]

    def use_resume_links(self, links: ResumeLinks) -> None:
        self.deps = replace(self.deps, delivery=replace(self.deps.delivery, resume_links=links))


@pytest.fixture
async def world(store: MemoryStorage) -> World:
    await store.directory.upsert_district(district())
    sms, email = ScriptedSender("twilio-fake"), ScriptedSender("sendgrid-fake")
    events, clock, suppressions = RecordingEvents(), SteppingClock(), RecordingSuppressions()
    delivery = DeliveryDependencies(
        **delivery_ports(store),
        senders={Channel.SMS: sms, Channel.EMAIL: email},
        events=events,
        catalogs=GettextCatalogs(),
        clock=clock,
        metrics=PrometheusMetrics(),
        retry=RetryPolicy(
            attempts=3, max_seconds=5, first_wait_seconds=0.001, longest_wait_seconds=0.01
        ),
        in_flight=asyncio.Semaphore(8),
    )
    deps = FollowUpDependencies(
        delivery=delivery,
        contact_points=ContactPointDependencies(
            store.contact_points,
            store.audit,
            store.directory,
            suppressions={Channel.EMAIL: suppressions},
            clock=clock,
        ),
        history=store.ledger,
        provider_events=store.provider_events,
        policy=FollowUpPolicy(
            strikes_to_fail=3,
            overdue_after=timedelta(minutes=30),
            sms_final_status_expected=True,
        ),
    )
    return World(store, sms, email, events, clock, suppressions, deps)


def sms_body(message: OutboundMessage) -> str:
    assert message.sms is not None
    return message.sms.body


def resume_token(message: OutboundMessage) -> str | None:
    found = RESUME_LINK.search(sms_body(message))
    return found.group(1) if found else None


# --- a bounce and its failover ---------------------------------------------------------------


async def test_full_inbox_bounce_sends_same_message_by_sms(world: World) -> None:
    await world.store.directory.upsert_recipient(email_first())
    await world.deliver("msg-1", LUCIA)
    email = await world.delivery("msg-1", LUCIA, Channel.EMAIL)
    bounced_at = world.clock.now()

    outcome = await world.sendgrid(
        FULL_INBOX, delivery_id=email.delivery_id, address=LUCIA_EMAIL, occurred_at=bounced_at
    )

    assert outcome is ReportOutcome.APPLIED
    assert (await world.delivery("msg-1", LUCIA, Channel.EMAIL)).status is DeliveryStatus.BOUNCED
    assert await world.point(Channel.EMAIL, LUCIA_EMAIL) == ContactPoint(
        Channel.EMAIL, LUCIA_EMAIL, ContactStatus.FAILING, Reason.MAILBOX_FULL, bounced_at
    )
    [bounce] = [
        e for e in world.published("msg-1", Channel.EMAIL) if e.status is DeliveryStatus.BOUNCED
    ]
    assert (bounce.reason, bounce.recipient_id) == (Reason.MAILBOX_FULL, LUCIA)

    [text] = world.sms.sent
    assert (text.message_id, text.to, text.language) == ("msg-1", LUCIA_PHONE, "es")
    assert sms_body(text) == f"Para Lucía: Ms. Rivera: {BODY_ES}"
    [first_email] = world.email.sent
    assert first_email.email is not None
    assert BODY_ES in first_email.email.text, "the text repeats the email's message"
    fallback = await world.delivery("msg-1", LUCIA, Channel.SMS)
    assert (fallback.status, fallback.route, fallback.fallback_from) == (
        DeliveryStatus.SENT,
        Route.FAILOVER_BOUNCE,
        Channel.EMAIL,
    )
    assert [
        (e.status, e.route, e.fallback_from, e.language)
        for e in world.published("msg-1", Channel.SMS)
    ] == [
        (DeliveryStatus.QUEUED, Route.FAILOVER_BOUNCE, Channel.EMAIL, "es"),
        (DeliveryStatus.SENT, Route.FAILOVER_BOUNCE, Channel.EMAIL, "es"),
    ]


async def test_a_bounce_is_matched_by_the_providers_message_id(world: World) -> None:
    await world.store.directory.upsert_recipient(email_first())
    await world.deliver("msg-1", LUCIA)
    email = await world.delivery("msg-1", LUCIA, Channel.EMAIL)
    assert email.provider_message_id is not None

    outcome = await world.sendgrid(FULL_INBOX, provider_message_id=email.provider_message_id)

    assert outcome is ReportOutcome.APPLIED
    assert (await world.delivery("msg-1", LUCIA, Channel.EMAIL)).status is DeliveryStatus.BOUNCED
    assert (await world.point(Channel.EMAIL, LUCIA_EMAIL)).status is ContactStatus.FAILING
    assert [m.message_id for m in world.sms.sent] == ["msg-1"]


async def test_a_delayed_bounce_with_only_address_and_time_matches_the_last_email_before_it(
    world: World,
) -> None:
    await world.store.directory.upsert_recipient(email_first())
    await world.deliver("msg-1", LUCIA)
    await world.deliver("msg-2", LUCIA)
    bounced_at = world.clock.now()
    await world.deliver("msg-3", LUCIA)  # sent after the bounce happened

    outcome = await world.sendgrid(FULL_INBOX, address=LUCIA_EMAIL, occurred_at=bounced_at)

    assert outcome is ReportOutcome.APPLIED
    statuses = {
        message_id: (await world.delivery(message_id, LUCIA, Channel.EMAIL)).status
        for message_id in ("msg-1", "msg-2", "msg-3")
    }
    assert statuses == {
        "msg-1": DeliveryStatus.SENT,
        "msg-2": DeliveryStatus.BOUNCED,
        "msg-3": DeliveryStatus.SENT,
    }
    assert [m.message_id for m in world.sms.sent] == ["msg-2"]


async def test_after_a_bounce_the_next_message_goes_straight_to_sms(world: World) -> None:
    await world.store.directory.upsert_recipient(email_first())
    await world.deliver("msg-1", LUCIA)
    await world.sendgrid(FULL_INBOX, address=LUCIA_EMAIL)

    await world.deliver("msg-2", LUCIA)

    assert [m.message_id for m in world.email.sent] == ["msg-1"]
    assert [m.message_id for m in world.sms.sent] == ["msg-1", "msg-2"]
    text = await world.delivery("msg-2", LUCIA, Channel.SMS)
    assert (text.status, text.route, text.fallback_from) == (
        DeliveryStatus.SENT,
        Route.CONTACT_POINT_FAILING,
        Channel.EMAIL,
    )
    assert world.published("msg-2", Channel.EMAIL) == []


async def test_a_late_delivered_after_the_bounce_changes_nothing(world: World) -> None:
    await world.store.directory.upsert_recipient(email_first())
    await world.deliver("msg-1", LUCIA)
    email = await world.delivery("msg-1", LUCIA, Channel.EMAIL)
    await world.sendgrid(FULL_INBOX, delivery_id=email.delivery_id)
    published = len(world.events.published)

    outcome = await world.sendgrid(classify_sendgrid("delivered"), delivery_id=email.delivery_id)

    assert outcome is ReportOutcome.LATE
    assert (await world.delivery("msg-1", LUCIA, Channel.EMAIL)).status is DeliveryStatus.BOUNCED
    assert (await world.point(Channel.EMAIL, LUCIA_EMAIL)).status is ContactStatus.FAILING
    assert len(world.sms.sent) == 1
    assert len(world.events.published) == published


async def test_a_bounce_after_delivered_marks_the_address_but_sends_nothing_again(
    world: World,
) -> None:
    await world.store.directory.upsert_recipient(email_first())
    await world.deliver("msg-1", LUCIA)
    email = await world.delivery("msg-1", LUCIA, Channel.EMAIL)
    delivered = await world.sendgrid(classify_sendgrid("delivered"), delivery_id=email.delivery_id)

    outcome = await world.sendgrid(FULL_INBOX, delivery_id=email.delivery_id)

    assert (delivered, outcome) == (ReportOutcome.APPLIED, ReportOutcome.LATE)
    assert (await world.delivery("msg-1", LUCIA, Channel.EMAIL)).status is DeliveryStatus.DELIVERED
    point = await world.point(Channel.EMAIL, LUCIA_EMAIL)
    assert (point.status, point.reason) == (ContactStatus.FAILING, Reason.MAILBOX_FULL)
    assert world.sms.sent == []


async def test_the_same_report_twice_is_applied_once(world: World) -> None:
    await world.store.directory.upsert_recipient(email_first())
    await world.deliver("msg-1", LUCIA)
    email = await world.delivery("msg-1", LUCIA, Channel.EMAIL)
    first = await world.sendgrid(FULL_INBOX, event_key="sg-ev-1", delivery_id=email.delivery_id)
    published = len(world.events.published)

    second = await world.sendgrid(FULL_INBOX, event_key="sg-ev-1", delivery_id=email.delivery_id)

    assert (first, second) == (ReportOutcome.APPLIED, ReportOutcome.REPEATED)
    assert len(world.sms.sent) == 1
    assert len(world.events.published) == published


# --- never back and forth --------------------------------------------------------------------


async def test_a_failed_sms_fallback_does_not_go_back_to_email(world: World) -> None:
    await world.store.directory.upsert_recipient(email_first())
    await world.deliver("msg-1", LUCIA)
    await world.sendgrid(FULL_INBOX, address=LUCIA_EMAIL)
    fallback = await world.delivery("msg-1", LUCIA, Channel.SMS)
    before = len(world.events.published)

    outcome = await world.twilio(
        UNKNOWN_HANDSET, provider_message_id=fallback.provider_message_id, address=LUCIA_PHONE
    )

    assert outcome is ReportOutcome.APPLIED
    failed = await world.delivery("msg-1", LUCIA, Channel.SMS)
    assert (failed.status, failed.reason) == (DeliveryStatus.FAILED, Reason.INVALID_ADDRESS)
    assert [(e.channel, e.status) for e in world.events.published[before:]] == [
        (Channel.SMS, DeliveryStatus.FAILED)
    ], "nothing is attempted on email again, not even a repeat of its outcome"
    assert (await world.point(Channel.SMS, LUCIA_PHONE)).status is ContactStatus.FAILING
    assert len(world.email.sent) == 1, "no second email for the same message"
    assert len(world.sms.sent) == 1
    deliveries = await world.store.ledger.deliveries_of_message("msg-1")
    assert sorted(d.channel for d in deliveries) == [Channel.APP, Channel.EMAIL, Channel.SMS]


async def test_a_failed_email_fallback_does_not_go_back_to_sms(world: World) -> None:
    await world.store.directory.upsert_recipient(recipient(id=DENNIS))
    await world.deliver("msg-1", DENNIS)
    text = await world.delivery("msg-1", DENNIS, Channel.SMS)
    await world.twilio(UNREACHABLE_HANDSET, provider_message_id=text.provider_message_id)
    fallback = await world.delivery("msg-1", DENNIS, Channel.EMAIL)
    assert fallback.fallback_from is Channel.SMS

    before = len(world.events.published)

    outcome = await world.sendgrid(FULL_INBOX, delivery_id=fallback.delivery_id)

    assert outcome is ReportOutcome.APPLIED
    assert (await world.delivery("msg-1", DENNIS, Channel.EMAIL)).status is DeliveryStatus.BOUNCED
    assert [(e.channel, e.status) for e in world.events.published[before:]] == [
        (Channel.EMAIL, DeliveryStatus.BOUNCED)
    ]
    assert len(world.sms.sent) == 1, "no second text for the same message"
    assert len(world.email.sent) == 1


@pytest.mark.parametrize(
    ("alternate", "expected"),
    [
        (
            ContactPoint(Channel.SMS, LUCIA_PHONE, ContactStatus.FAILING, Reason.INVALID_ADDRESS),
            (DeliveryStatus.SKIPPED, Reason.INVALID_ADDRESS),
        ),
        (
            ContactPoint(Channel.SMS, LUCIA_PHONE, ContactStatus.OPTED_OUT, Reason.OPTED_OUT),
            (DeliveryStatus.SUPPRESSED, Reason.OPTED_OUT),
        ),
    ],
    ids=["failing", "opted_out"],
)
async def test_a_fallback_to_an_unusable_alternate_is_recorded_and_nothing_is_sent(
    world: World, alternate: ContactPoint, expected: tuple[DeliveryStatus, Reason]
) -> None:
    await world.store.directory.upsert_recipient(email_first())
    await world.store.contact_points.set_contact_point(replace(alternate, since=world.clock.now()))
    await world.deliver("msg-1", LUCIA)

    await world.sendgrid(FULL_INBOX, address=LUCIA_EMAIL)

    fallback = await world.delivery("msg-1", LUCIA, Channel.SMS)
    assert (fallback.status, fallback.reason) == expected
    assert (fallback.route, fallback.fallback_from) == (Route.FAILOVER_BOUNCE, Channel.EMAIL)
    assert [(e.status, e.reason) for e in world.published("msg-1", Channel.SMS)] == [expected]
    assert world.sms.sent == []


# --- a shared address ------------------------------------------------------------------------

FAMILY_EMAIL = "mendez.family@home.example"
MATEO = "guardian-mateo"
MATEO_PHONE = "+15555550199"


async def given_a_family_sharing_one_inbox(world: World) -> None:
    await world.store.directory.upsert_recipient(email_first(email=FAMILY_EMAIL))
    await world.store.directory.upsert_recipient(
        email_first(
            MATEO,
            display_name="Mateo Méndez",
            first_name="Mateo",
            language="en",
            phone=MATEO_PHONE,
            email=FAMILY_EMAIL,
        )
    )


async def test_one_bounce_of_a_shared_inbox_fails_over_everyone_using_it(world: World) -> None:
    await given_a_family_sharing_one_inbox(world)
    await world.deliver("msg-1", LUCIA, MATEO)
    lucias = await world.delivery("msg-1", LUCIA, Channel.EMAIL)

    await world.sendgrid(FULL_INBOX, delivery_id=lucias.delivery_id, address=FAMILY_EMAIL)

    emails = {r: (await world.delivery("msg-1", r, Channel.EMAIL)).status for r in (LUCIA, MATEO)}
    assert emails == {LUCIA: DeliveryStatus.BOUNCED, MATEO: DeliveryStatus.FAILED}
    assert sorted((m.to, sms_body(m)) for m in world.sms.sent) == [
        (LUCIA_PHONE, f"Para Lucía: Ms. Rivera: {BODY_ES}"),
        (MATEO_PHONE, "For Mateo: Ms. Rivera: Field trip forms are due Friday."),
    ]
    for recipient_id in (LUCIA, MATEO):
        fallback = await world.delivery("msg-1", recipient_id, Channel.SMS)
        assert (fallback.status, fallback.fallback_from) == (DeliveryStatus.SENT, Channel.EMAIL)


async def test_a_sibling_failed_over_by_a_shared_bounce_is_explained_as_a_bounce(
    world: World,
) -> None:
    # Support reads the route: Mateo's text exists because the inbox bounced, not because a
    # provider rejected anything.
    await given_a_family_sharing_one_inbox(world)
    await world.deliver("msg-1", LUCIA, MATEO)
    lucias = await world.delivery("msg-1", LUCIA, Channel.EMAIL)

    await world.sendgrid(FULL_INBOX, delivery_id=lucias.delivery_id, address=FAMILY_EMAIL)

    routes = {r: (await world.delivery("msg-1", r, Channel.SMS)).route for r in (LUCIA, MATEO)}
    assert routes == {LUCIA: Route.FAILOVER_BOUNCE, MATEO: Route.FAILOVER_BOUNCE}


async def test_the_siblings_own_bounce_arriving_later_sends_nothing_more(world: World) -> None:
    await given_a_family_sharing_one_inbox(world)
    await world.deliver("msg-1", LUCIA, MATEO)
    lucias = await world.delivery("msg-1", LUCIA, Channel.EMAIL)
    mateos = await world.delivery("msg-1", MATEO, Channel.EMAIL)
    await world.sendgrid(FULL_INBOX, delivery_id=lucias.delivery_id, address=FAMILY_EMAIL)

    outcome = await world.sendgrid(FULL_INBOX, delivery_id=mateos.delivery_id)

    assert outcome is ReportOutcome.LATE
    assert len(world.sms.sent) == 2


async def test_after_a_shared_inbox_bounces_both_people_get_later_messages_by_sms(
    world: World,
) -> None:
    await given_a_family_sharing_one_inbox(world)
    await world.deliver("msg-1", LUCIA, MATEO)
    await world.sendgrid(FULL_INBOX, address=FAMILY_EMAIL)

    await world.deliver("msg-2", LUCIA, MATEO)

    assert [m.message_id for m in world.email.sent] == ["msg-1", "msg-1"]
    later = [await world.delivery("msg-2", r, Channel.SMS) for r in (LUCIA, MATEO)]
    assert [(d.status, d.route) for d in later] == [
        (DeliveryStatus.SENT, Route.CONTACT_POINT_FAILING),
        (DeliveryStatus.SENT, Route.CONTACT_POINT_FAILING),
    ]


# --- SMS: STOP and unreachable handsets ------------------------------------------------------


async def test_replied_stop_opts_the_number_out_and_later_messages_use_email(
    world: World,
) -> None:
    await world.store.directory.upsert_recipient(recipient(id=DENNIS))
    await world.deliver("msg-1", DENNIS)
    text = await world.delivery("msg-1", DENNIS, Channel.SMS)

    outcome = await world.twilio(
        REPLIED_STOP, provider_message_id=text.provider_message_id, address=PHONE
    )

    assert outcome is ReportOutcome.APPLIED
    point = await world.point(Channel.SMS, PHONE)
    assert (point.status, point.reason) == (ContactStatus.OPTED_OUT, Reason.OPTED_OUT)
    [fallback] = world.email.sent
    assert (fallback.message_id, fallback.to) == ("msg-1", EMAIL)

    await world.deliver("msg-2", DENNIS)

    assert [m.message_id for m in world.sms.sent] == ["msg-1"]
    text = await world.delivery("msg-2", DENNIS, Channel.SMS)
    assert (text.status, text.reason) == (DeliveryStatus.SUPPRESSED, Reason.OPTED_OUT)
    email = await world.delivery("msg-2", DENNIS, Channel.EMAIL)
    assert (email.status, email.route, email.fallback_from) == (
        DeliveryStatus.SENT,
        Route.CONTACT_POINT_FAILING,
        Channel.SMS,
    )


async def test_after_stop_someone_with_only_that_number_is_suppressed(world: World) -> None:
    await world.store.directory.upsert_recipient(recipient(id=DENNIS))
    await world.store.directory.upsert_recipient(
        recipient(id="guardian-ana", first_name="Ana", display_name="Ana Park", email=None)
    )
    await world.deliver("msg-1", DENNIS)
    text = await world.delivery("msg-1", DENNIS, Channel.SMS)
    await world.twilio(REPLIED_STOP, provider_message_id=text.provider_message_id)

    await world.deliver("msg-2", "guardian-ana")

    anas = await world.delivery("msg-2", "guardian-ana", Channel.SMS)
    assert (anas.status, anas.reason) == (DeliveryStatus.SUPPRESSED, Reason.OPTED_OUT)
    assert [m.message_id for m in world.sms.sent] == ["msg-1"]


async def test_an_unreachable_handset_marks_the_number_failing_only_on_the_third_strike(
    world: World,
) -> None:
    await world.store.directory.upsert_recipient(recipient(id=DENNIS))
    seen = []
    for message_id in ("msg-1", "msg-2", "msg-3"):
        await world.deliver(message_id, DENNIS)
        text = await world.delivery(message_id, DENNIS, Channel.SMS)
        await world.twilio(UNREACHABLE_HANDSET, provider_message_id=text.provider_message_id)
        point = await world.point(Channel.SMS, PHONE)
        seen.append((point.status, point.reason))

    assert seen == [
        (ContactStatus.ACTIVE, None),
        (ContactStatus.ACTIVE, None),
        (ContactStatus.FAILING, Reason.UNREACHABLE),
    ]
    assert [m.message_id for m in world.email.sent] == ["msg-1", "msg-2", "msg-3"]
    for message_id in ("msg-1", "msg-2", "msg-3"):
        fallback = await world.delivery(message_id, DENNIS, Channel.EMAIL)
        assert (fallback.route, fallback.fallback_from) == (Route.FAILOVER_REJECTED, Channel.SMS)


async def test_a_delivered_text_between_unreachable_reports_starts_the_count_again(
    world: World,
) -> None:
    await world.store.directory.upsert_recipient(recipient(id=DENNIS))
    reports = [UNREACHABLE_HANDSET, UNREACHABLE_HANDSET, classify_twilio("delivered", None)]
    reports.append(UNREACHABLE_HANDSET)
    for number, classification in enumerate(reports, start=1):
        await world.deliver(f"msg-{number}", DENNIS)
        text = await world.delivery(f"msg-{number}", DENNIS, Channel.SMS)
        await world.twilio(classification, provider_message_id=text.provider_message_id)

    point = await world.point(Channel.SMS, PHONE)
    assert (point.status, point.strikes) == (ContactStatus.ACTIVE, 1)


# --- resets ----------------------------------------------------------------------------------


async def test_support_reset_brings_email_back_and_clears_the_providers_suppression(
    world: World,
) -> None:
    await world.store.directory.upsert_recipient(email_first())
    await world.deliver("msg-1", LUCIA)
    await world.sendgrid(FULL_INBOX, address=LUCIA_EMAIL)

    result = await reset_contact_point(
        Channel.EMAIL,
        LUCIA_EMAIL,
        SUPPORT,
        "Inbox cleaned out, confirmed by phone",
        "req-42",
        world.deps.contact_points,
    )

    assert (result.previous.status, result.suppression) == (
        ContactStatus.FAILING,
        SuppressionOutcome.REMOVED,
    )
    assert world.suppressions.removed == [LUCIA_EMAIL]
    point = await world.point(Channel.EMAIL, LUCIA_EMAIL)
    assert (point.status, point.reason) == (ContactStatus.ACTIVE, None)
    [entry] = await world.store.audit.audit_entries()
    assert (entry.actor, entry.scope, entry.action) == ("alice", "support", "reset_contact_point")
    assert (entry.channel, entry.address, entry.note, entry.request_id) == (
        Channel.EMAIL,
        LUCIA_EMAIL,
        "Inbox cleaned out, confirmed by phone",
        "req-42",
    )

    await world.deliver("msg-2", LUCIA)

    assert [m.message_id for m in world.email.sent] == ["msg-1", "msg-2"]
    email = await world.delivery("msg-2", LUCIA, Channel.EMAIL)
    assert (email.route, email.fallback_from) == (Route.PREFERRED, None)


async def test_a_suppression_removal_that_keeps_failing_is_reported_and_the_reset_stands(
    world: World,
) -> None:
    await world.store.contact_points.set_contact_point(
        ContactPoint(
            Channel.EMAIL,
            LUCIA_EMAIL,
            ContactStatus.FAILING,
            Reason.MAILBOX_FULL,
            world.clock.now(),
        )
    )
    world.suppressions.script.extend(
        ProviderError("sendgrid-fake", "HTTP 503 from the suppression API") for _ in range(5)
    )

    result = await reset_contact_point(
        Channel.EMAIL, LUCIA_EMAIL, SUPPORT, None, None, world.deps.contact_points
    )

    assert result.suppression is SuppressionOutcome.FAILED
    assert result.suppression_detail is not None
    assert "HTTP 503" in result.suppression_detail
    assert len(world.suppressions.asked) > 1, "the provider call is retried"
    assert world.suppressions.removed == []
    assert (await world.point(Channel.EMAIL, LUCIA_EMAIL)).status is ContactStatus.ACTIVE
    [entry] = await world.store.audit.audit_entries()
    assert entry.outcome is not None
    assert "failed" in entry.outcome


async def test_support_cannot_lift_a_stop_and_nothing_changes(world: World) -> None:
    await apply_sms_keyword(PHONE, SmsKeyword.STOP, "inbound-1", world.deps.contact_points)
    audited = await world.store.audit.audit_entries()

    with pytest.raises(ResetRefused):
        await reset_contact_point(
            Channel.SMS, PHONE, SUPPORT, "asked by phone", None, world.deps.contact_points
        )

    point = await world.point(Channel.SMS, PHONE)
    assert (point.status, point.reason) == (ContactStatus.OPTED_OUT, Reason.OPTED_OUT)
    assert await world.store.audit.audit_entries() == audited
    assert world.suppressions.asked == []


async def test_the_persons_start_lifts_their_stop(world: World) -> None:
    await apply_sms_keyword(PHONE, SmsKeyword.STOP, "inbound-1", world.deps.contact_points)

    await apply_sms_keyword(PHONE, SmsKeyword.START, "inbound-2", world.deps.contact_points)

    assert (await world.point(Channel.SMS, PHONE)).status is ContactStatus.ACTIVE
    latest = (await world.store.audit.audit_entries())[0]
    assert (latest.actor, latest.address, latest.request_id) == ("person", PHONE, "inbound-2")


@pytest.mark.parametrize(
    ("body", "keyword"),
    [
        ("STOP", SmsKeyword.STOP),
        ("stop", SmsKeyword.STOP),
        (" StopAll ", SmsKeyword.STOP),
        ("Stop  All", SmsKeyword.STOP),
        ("UNSUBSCRIBE", SmsKeyword.STOP),
        ("START", SmsKeyword.START),
        ("YES", SmsKeyword.START),
        ("HELP", SmsKeyword.HELP),
        ("stop please", None),
    ],
)
def test_sms_keywords_are_whole_messages_in_any_case(body: str, keyword: SmsKeyword | None) -> None:
    assert sms_keyword(body) is keyword


async def test_a_tracked_click_from_a_failing_address_is_the_persons_reset(world: World) -> None:
    await world.store.directory.upsert_recipient(email_first())
    await world.deliver("msg-1", LUCIA)
    await world.sendgrid(FULL_INBOX, address=LUCIA_EMAIL)

    await world.sendgrid(classify_sendgrid("click"), address=LUCIA_EMAIL)

    assert (await world.point(Channel.EMAIL, LUCIA_EMAIL)).status is ContactStatus.ACTIVE
    [entry] = await world.store.audit.audit_entries()
    assert (entry.actor, entry.action, entry.address) == (
        "person",
        "reset_contact_point",
        LUCIA_EMAIL,
    )
    assert world.suppressions.removed == [LUCIA_EMAIL]


async def test_a_tracked_click_from_an_active_address_changes_nothing(world: World) -> None:
    await world.store.directory.upsert_recipient(email_first())
    await world.deliver("msg-1", LUCIA)
    email = await world.delivery("msg-1", LUCIA, Channel.EMAIL)

    outcome = await world.sendgrid(
        classify_sendgrid("click"), delivery_id=email.delivery_id, address=LUCIA_EMAIL
    )

    assert outcome is ReportOutcome.IGNORED
    assert (await world.delivery("msg-1", LUCIA, Channel.EMAIL)).status is DeliveryStatus.SENT
    assert await world.store.audit.audit_entries() == []
    assert world.suppressions.asked == []


# --- deferred too long -----------------------------------------------------------------------


async def given_a_deferred_email(world: World, message_id: str) -> DeliveryRecord:
    await world.deliver(message_id, LUCIA)
    email = await world.delivery(message_id, LUCIA, Channel.EMAIL)
    await world.sendgrid(MAILBOX_FULL_DEFERRAL, delivery_id=email.delivery_id)
    deferred = await world.delivery(message_id, LUCIA, Channel.EMAIL)
    assert deferred.status is DeliveryStatus.DEFERRED
    return deferred


async def test_an_email_deferred_too_long_fails_over_to_sms(world: World) -> None:
    await world.store.directory.upsert_recipient(email_first())
    await given_a_deferred_email(world, "msg-1")
    world.clock.current += timedelta(minutes=31)

    handled = await fail_over_overdue(world.deps)

    assert handled == 1
    email = await world.delivery("msg-1", LUCIA, Channel.EMAIL)
    assert (email.status, email.reason) == (DeliveryStatus.FAILED, Reason.DEFERRED_TOO_LONG)
    fallback = await world.delivery("msg-1", LUCIA, Channel.SMS)
    assert (fallback.status, fallback.route, fallback.fallback_from) == (
        DeliveryStatus.SENT,
        Route.FAILOVER_DEFERRED_TOO_LONG,
        Channel.EMAIL,
    )
    assert [m.message_id for m in world.sms.sent] == ["msg-1"]
    assert (await world.point(Channel.EMAIL, LUCIA_EMAIL)).status is ContactStatus.ACTIVE


async def test_a_younger_deferral_is_left_alone(world: World) -> None:
    await world.store.directory.upsert_recipient(email_first())
    await given_a_deferred_email(world, "msg-1")
    world.clock.current += timedelta(minutes=29)

    handled = await fail_over_overdue(world.deps)

    assert handled == 0
    assert (await world.delivery("msg-1", LUCIA, Channel.EMAIL)).status is DeliveryStatus.DEFERRED
    assert world.sms.sent == []


async def test_a_districts_own_deferral_limit_overrides_the_default(world: World) -> None:
    await world.store.directory.upsert_district(district(deferred_failover_minutes=10))
    await world.store.directory.upsert_recipient(email_first())
    await given_a_deferred_email(world, "msg-1")
    world.clock.current += timedelta(minutes=11)

    handled = await fail_over_overdue(world.deps)

    assert handled == 1
    assert (await world.delivery("msg-1", LUCIA, Channel.EMAIL)).status is DeliveryStatus.FAILED
    assert [m.message_id for m in world.sms.sent] == ["msg-1"]


async def test_three_overdue_deferrals_mark_a_full_mailbox_failing(world: World) -> None:
    await world.store.directory.upsert_recipient(email_first())
    seen = []
    for message_id in ("msg-1", "msg-2", "msg-3"):
        await given_a_deferred_email(world, message_id)
        world.clock.current += timedelta(minutes=31)
        await fail_over_overdue(world.deps)
        text = await world.delivery(message_id, LUCIA, Channel.SMS)
        await world.twilio(
            classify_twilio("delivered", None), provider_message_id=text.provider_message_id
        )
        point = await world.point(Channel.EMAIL, LUCIA_EMAIL)
        seen.append((point.status, point.reason))

    assert seen == [
        (ContactStatus.ACTIVE, None),
        (ContactStatus.ACTIVE, None),
        (ContactStatus.FAILING, Reason.MAILBOX_FULL),
    ]
    assert [m.message_id for m in world.sms.sent] == ["msg-1", "msg-2", "msg-3"]


async def test_a_text_without_a_final_status_fails_over_to_email(world: World) -> None:
    await world.store.directory.upsert_recipient(recipient(id=DENNIS))
    await world.deliver("msg-1", DENNIS)
    world.clock.current += timedelta(minutes=31)

    handled = await fail_over_overdue(world.deps)

    assert handled == 1
    text = await world.delivery("msg-1", DENNIS, Channel.SMS)
    assert (text.status, text.reason) == (DeliveryStatus.FAILED, Reason.DEFERRED_TOO_LONG)
    fallback = await world.delivery("msg-1", DENNIS, Channel.EMAIL)
    assert (fallback.route, fallback.fallback_from) == (
        Route.FAILOVER_DEFERRED_TOO_LONG,
        Channel.SMS,
    )


# --- the resume link -------------------------------------------------------------------------


async def test_only_the_first_text_for_a_failing_email_carries_a_resume_link(
    world: World,
) -> None:
    world.use_resume_links(RESUME_LINKS)
    await world.store.directory.upsert_recipient(email_first())
    await world.deliver("msg-1", LUCIA)
    await world.sendgrid(FULL_INBOX, address=LUCIA_EMAIL)

    await world.deliver("msg-2", LUCIA)

    first, second = world.sms.sent
    token = resume_token(first)
    assert token is not None
    assert read_token(token, RESUME_LINKS.secret, world.clock.now()) == LUCIA_EMAIL
    assert sms_body(first).startswith(f"Para Lucía: Ms. Rivera: {BODY_ES}\n")
    assert second.message_id == "msg-2"
    assert resume_token(second) is None


async def test_after_a_reset_the_next_failing_period_gets_a_resume_link_again(
    world: World,
) -> None:
    world.use_resume_links(RESUME_LINKS)
    await world.store.directory.upsert_recipient(email_first())
    await world.deliver("msg-1", LUCIA)
    await world.sendgrid(FULL_INBOX, address=LUCIA_EMAIL)
    await reset_contact_point(
        Channel.EMAIL, LUCIA_EMAIL, SUPPORT, None, None, world.deps.contact_points
    )

    await world.deliver("msg-2", LUCIA)
    await world.sendgrid(FULL_INBOX, address=LUCIA_EMAIL)

    assert [m.message_id for m in world.sms.sent] == ["msg-1", "msg-2"]
    assert [resume_token(m) is not None for m in world.sms.sent] == [True, True]


async def test_a_fallback_for_a_one_off_email_fault_does_not_use_up_the_resume_link(
    world: World,
) -> None:
    # A technical bounce fails one message over but says nothing about the address; the link
    # belongs to the first text of the period in which the address is actually failing.
    world.use_resume_links(RESUME_LINKS)
    await world.store.directory.upsert_recipient(email_first())
    await world.deliver("msg-1", LUCIA)
    technical = classify_sendgrid("bounce", type="bounce", bounce_classification="Technical")
    await world.sendgrid(technical, address=LUCIA_EMAIL)
    assert (await world.point(Channel.EMAIL, LUCIA_EMAIL)).status is ContactStatus.ACTIVE

    await world.deliver("msg-2", LUCIA)
    await world.sendgrid(FULL_INBOX, address=LUCIA_EMAIL)

    assert [m.message_id for m in world.sms.sent] == ["msg-1", "msg-2"]
    assert resume_token(world.sms.sent[1]) is not None


async def test_the_resume_link_lifts_a_failing_email_once_and_pressing_again_changes_nothing(
    world: World,
) -> None:
    await world.store.directory.upsert_recipient(email_first())
    await world.deliver("msg-1", LUCIA)
    await world.sendgrid(FULL_INBOX, address=LUCIA_EMAIL)

    first = await resume_email(LUCIA_EMAIL, "req-1", world.deps.contact_points)
    again = await resume_email(LUCIA_EMAIL, "req-2", world.deps.contact_points)

    assert (first.lifted, first.previous.status, first.suppression) == (
        True,
        ContactStatus.FAILING,
        SuppressionOutcome.REMOVED,
    )
    assert (again.lifted, again.previous.status, again.suppression) == (
        False,
        ContactStatus.ACTIVE,
        SuppressionOutcome.NOT_APPLICABLE,
    )
    assert (await world.point(Channel.EMAIL, LUCIA_EMAIL)).status is ContactStatus.ACTIVE
    assert world.suppressions.asked == [LUCIA_EMAIL]
    [entry] = await world.store.audit.audit_entries()
    assert (entry.actor, entry.scope, entry.request_id) == ("person", "resume link", "req-1")


async def test_the_resume_link_leaves_an_opt_out_as_it_is(world: World) -> None:
    await world.store.directory.upsert_recipient(email_first())
    await world.deliver("msg-1", LUCIA)
    await world.sendgrid(classify_sendgrid("spamreport"), address=LUCIA_EMAIL)

    result = await resume_email(LUCIA_EMAIL, "req-1", world.deps.contact_points)

    assert (result.lifted, result.previous.status) == (False, ContactStatus.OPTED_OUT)
    point = await world.point(Channel.EMAIL, LUCIA_EMAIL)
    assert (point.status, point.reason) == (ContactStatus.OPTED_OUT, Reason.SPAM_REPORT)
    assert await world.store.audit.audit_entries() == []
    assert world.suppressions.asked == []


async def test_supports_reset_of_an_active_email_clears_the_providers_block_list_again(
    world: World,
) -> None:
    # The console's advice when the block list could not be cleared: reset it again later.
    await world.store.directory.upsert_recipient(email_first())

    result = await reset_contact_point(
        Channel.EMAIL, LUCIA_EMAIL, SUPPORT, "block list retry", None, world.deps.contact_points
    )

    assert (result.lifted, result.previous.status) == (True, ContactStatus.ACTIVE)
    assert world.suppressions.removed == [LUCIA_EMAIL]
    [entry] = await world.store.audit.audit_entries()
    assert entry.outcome is not None
    assert entry.outcome.startswith("active -> active")


async def test_the_resume_link_finds_the_language_of_whoever_uses_the_address(
    world: World,
) -> None:
    await world.store.directory.upsert_recipient(email_first())

    known = await resume_link_target(LUCIA_EMAIL, world.deps.contact_points)
    unknown = await resume_link_target("nobody@home.example", world.deps.contact_points)

    assert (known.language, known.point.status) == ("es", ContactStatus.ACTIVE)
    assert unknown.language is None


async def test_an_undelivered_shared_text_fails_over_everyone_it_was_for(world: World) -> None:
    await world.store.directory.upsert_recipient(
        recipient(id=DENNIS, first_name="Dennis", email="dennis@example.org")
    )
    await world.store.directory.upsert_recipient(
        recipient(id="guardian-maya", first_name="Maya", email="maya@example.org")
    )
    await world.deliver("msg-1", DENNIS, "guardian-maya")
    assert len(world.sms.sent) == 1, "one text for both"
    shared = await world.delivery("msg-1", DENNIS, Channel.SMS)

    outcome = await world.twilio(
        classify_twilio("undelivered", 30008), provider_message_id=shared.provider_message_id
    )

    assert outcome is ReportOutcome.APPLIED
    for person in (DENNIS, "guardian-maya"):
        failed = await world.delivery("msg-1", person, Channel.SMS)
        assert (failed.status, failed.reason) == (DeliveryStatus.FAILED, Reason.PROVIDER_ERROR)
    assert sorted(m.to for m in world.email.sent) == ["dennis@example.org", "maya@example.org"]


# --- a provider that keeps failing -----------------------------------------------------------


async def test_a_provider_that_keeps_failing_is_left_alone_and_messages_fail_over_at_once(
    world: World,
) -> None:
    circuit = CircuitBreaker(failure_threshold=3, cool_down=timedelta(minutes=1))
    delivery = replace(world.deps.delivery, circuits={"sendgrid-fake": circuit})
    world.deps = replace(world.deps, delivery=delivery)
    metrics = delivery.metrics
    assert isinstance(metrics, PrometheusMetrics)
    await world.store.directory.upsert_recipient(email_first())
    world.email.script.extend(TransientProviderError("sendgrid-fake", "HTTP 503") for _ in range(3))

    await deliver_and_fail_over(request("msg-1", LUCIA), world.deps)
    assert len(world.email.sent) == 3, "the retries' failures open the circuit"

    await deliver_and_fail_over(request("msg-2", LUCIA), world.deps)
    assert len(world.email.sent) == 3, "not called while the circuit is open"
    email = await world.delivery("msg-2", LUCIA, Channel.EMAIL)
    assert (email.status, email.reason) == (DeliveryStatus.FAILED, Reason.PROVIDER_ERROR)
    text = await world.delivery("msg-2", LUCIA, Channel.SMS)
    assert (text.status, text.route) == (DeliveryStatus.SENT, Route.FAILOVER_PROVIDER_ERROR)
    open_gauge = {"provider": "sendgrid-fake"}
    assert metrics.registry.get_sample_value("notifier_provider_circuit_open", open_gauge) == 1

    world.clock.current += timedelta(minutes=1)
    await deliver_and_fail_over(request("msg-3", LUCIA), world.deps)
    assert len(world.email.sent) == 4, "after the cool-down one call probes the provider"
    assert (await world.delivery("msg-3", LUCIA, Channel.EMAIL)).status is DeliveryStatus.SENT
    assert metrics.registry.get_sample_value("notifier_provider_circuit_open", open_gauge) == 0

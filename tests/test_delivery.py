"""The deliver-a-request use case on the store's ports in memory (tests/test_store.py tests
their SQL), with in-memory fakes for the providers and the event stream."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from notifier.adapters.catalogs import GettextCatalogs
from notifier.domain.model import (
    Channel,
    ContactPoint,
    ContactStatus,
    DeliveryStatus,
    Reason,
    Recipient,
    Role,
    Route,
    Sender,
    SendRequest,
)
from notifier.handlers import DeliveryDependencies, RetryPolicy, deliver_request
from notifier.handlers.delivery import event_for
from notifier.metrics import PrometheusMetrics
from notifier.ports import PermanentProviderError, TransientProviderError
from tests.builders import REQUEST_CREATED_AT, delivery_record, district, recipient, send_request
from tests.fakes.memory_store import MemoryLedger, MemoryStorage, delivery_ports
from tests.fakes.ports import RecordingEvents, ScriptedSender, SteppingClock

CREATED = REQUEST_CREATED_AT


def person(recipient_id: str, role: Role = Role.GUARDIAN, **overrides: Any) -> Recipient:
    """An English speaker in the directory with only the contact points the test gives."""
    fields = {"language": "en", "phone": None, "email": None, **overrides}
    return recipient(id=recipient_id, role=role, **fields)


def request(*recipient_ids: str) -> SendRequest:
    """Ms. Rivera's message "msg-1" to these recipients."""
    return send_request(
        message_id="msg-1",
        sender=Sender("staff-rivera", "Ms. Rivera", "staff"),
        recipient_ids=recipient_ids,
    )


@pytest.fixture
def store() -> MemoryStorage:
    """The store's ports in memory: these tests are about the use case, not the SQL
    (tests/test_store.py tests that on both databases)."""
    return MemoryStorage(SteppingClock())


@dataclass
class World:
    store: MemoryStorage
    sms: ScriptedSender
    email: ScriptedSender
    events: RecordingEvents
    metrics: PrometheusMetrics
    deps: DeliveryDependencies

    def statuses(self) -> dict[tuple[str, Channel], DeliveryStatus]:
        latest = {}
        for event in self.events.published:
            latest[(event.recipient_id, event.channel)] = event.status
        return latest


@pytest.fixture
async def world(store: MemoryStorage) -> World:
    await store.directory.upsert_district(district())
    sms, email = ScriptedSender("sms-fake"), ScriptedSender("email-fake")
    events, metrics = RecordingEvents(), PrometheusMetrics()
    deps = DeliveryDependencies(
        **delivery_ports(store),
        senders={Channel.SMS: sms, Channel.EMAIL: email},
        events=events,
        catalogs=GettextCatalogs(),
        clock=SteppingClock(),
        metrics=metrics,
        retry=RetryPolicy(
            attempts=3, max_seconds=5, first_wait_seconds=0.001, longest_wait_seconds=0.01
        ),
        in_flight=asyncio.Semaphore(8),
    )
    return World(store, sms, email, events, metrics, deps)


async def test_failing_email_sends_by_sms_with_fallback_from(world: World) -> None:
    await world.store.directory.upsert_recipient(
        person("staff-4", Role.STAFF, phone="+15555550177", email="wei@school.example")
    )
    await world.store.contact_points.set_contact_point(
        ContactPoint(
            Channel.EMAIL, "wei@school.example", ContactStatus.FAILING, Reason.MAILBOX_FULL, CREATED
        )
    )

    report = await deliver_request(request("staff-4"), world.deps)

    [sms] = [e for e in report.outcomes if e.channel is Channel.SMS]
    assert (sms.status, sms.route, sms.fallback_from) == (
        DeliveryStatus.SENT,
        Route.CONTACT_POINT_FAILING,
        Channel.EMAIL,
    )
    assert world.email.sent == []
    assert [m.to for m in world.sms.sent] == ["+15555550177"]


async def test_opted_out_phone_without_email_is_suppressed_and_nothing_is_texted(
    world: World,
) -> None:
    await world.store.directory.upsert_recipient(person("guardian-9", phone="+15555550123"))
    await world.store.contact_points.set_contact_point(
        ContactPoint(
            Channel.SMS, "+15555550123", ContactStatus.OPTED_OUT, Reason.OPTED_OUT, CREATED
        )
    )

    await deliver_request(request("guardian-9"), world.deps)

    [suppressed] = [e for e in world.events.published if e.channel is Channel.SMS]
    assert (suppressed.status, suppressed.reason) == (DeliveryStatus.SUPPRESSED, Reason.OPTED_OUT)
    assert world.sms.sent == []
    assert world.statuses()[("guardian-9", Channel.APP)] is DeliveryStatus.SENT


async def test_invalid_number_fails_the_sms_with_its_reason(world: World) -> None:
    await world.store.directory.upsert_recipient(person("guardian-9", phone="+15005550001"))
    world.sms.script.append(
        PermanentProviderError(
            "sms-fake", "not a valid phone number", reason=Reason.INVALID_ADDRESS
        )
    )

    report = await deliver_request(request("guardian-9"), world.deps)

    [failed] = [e for e in report.outcomes if e.channel is Channel.SMS]
    assert (failed.status, failed.reason) == (DeliveryStatus.FAILED, Reason.INVALID_ADDRESS)
    assert len(world.sms.sent) == 1, "a permanent error is not retried"
    stored = {r.channel: r for r in await world.store.ledger.deliveries_of_message("msg-1")}
    assert stored[Channel.SMS].status is DeliveryStatus.FAILED


async def test_transient_provider_errors_are_retried_until_accepted(world: World) -> None:
    await world.store.directory.upsert_recipient(person("guardian-9", phone="+15555550123"))
    world.sms.script.extend(
        [
            TransientProviderError("sms-fake", "HTTP 503"),
            TransientProviderError("sms-fake", "HTTP 429", retry_after=0.01),
        ]
    )

    report = await deliver_request(request("guardian-9"), world.deps)

    [sent] = [e for e in report.outcomes if e.channel is Channel.SMS]
    assert sent.status is DeliveryStatus.SENT
    assert sent.provider_message_id == "sms-fake-3"
    assert len(world.sms.sent) == 3


async def test_a_provider_that_keeps_failing_ends_in_failed_provider_error(world: World) -> None:
    await world.store.directory.upsert_recipient(person("guardian-9", phone="+15555550123"))
    world.sms.script.extend(TransientProviderError("sms-fake", "HTTP 500") for _ in range(5))

    report = await deliver_request(request("guardian-9"), world.deps)

    [failed] = [e for e in report.outcomes if e.channel is Channel.SMS]
    assert (failed.status, failed.reason) == (DeliveryStatus.FAILED, Reason.PROVIDER_ERROR)
    assert len(world.sms.sent) == 3, "bounded by the retry policy's attempts"


async def test_two_copies_of_a_request_at_once_text_the_person_once(world: World) -> None:
    await world.store.directory.upsert_recipient(person("guardian-9", phone="+15555550123"))
    world.sms.delay_seconds = 0.05  # both copies are in flight together

    first, second = await asyncio.gather(
        deliver_request(request("guardian-9"), world.deps),
        deliver_request(request("guardian-9"), world.deps),
    )

    assert len(world.sms.sent) == 1
    assert len(await world.store.inbox.inbox("guardian-9")) == 1
    assert {first.repeated, second.repeated} == {0, 2}


async def test_a_delivery_left_queued_by_a_dead_attempt_is_sent_again(world: World) -> None:
    # The documented rule: an attempt that died mid-send has an unknown outcome; a possible
    # duplicate is preferred to a lost notice.
    await world.store.directory.upsert_recipient(person("guardian-9", phone="+15555550123"))
    await world.store.ledger.claim_delivery(delivery_record(message_id="msg-1", language="en"))

    await deliver_request(request("guardian-9"), world.deps)

    assert len(world.sms.sent) == 1
    assert world.statuses()[("guardian-9", Channel.SMS)] is DeliveryStatus.SENT
    [stored] = [
        r
        for r in await world.store.ledger.deliveries_of_message("msg-1")
        if r.channel is Channel.SMS
    ]
    assert stored.attempts == 2, "known as a possible duplicate"
    assert (
        world.metrics.registry.get_sample_value(
            "notifier_unknown_outcome_total", {"channel": "sms"}
        )
        == 1
    )


async def test_a_delivery_past_queued_is_never_sent_again_even_if_not_final(
    world: World,
) -> None:
    # A deferred email (not terminal: it may still bounce) was sent: a redelivered request
    # must not email the person again.
    await world.store.directory.upsert_recipient(person("guardian-9", phone="+15555550123"))
    queued = delivery_record(message_id="msg-1", language="en")
    await world.store.ledger.claim_delivery(queued)
    await world.store.ledger.record_event(
        event_for(queued, DeliveryStatus.DEFERRED, world.deps.clock)
    )

    await deliver_request(request("guardian-9"), world.deps)

    assert world.sms.sent == []


async def test_a_retry_after_longer_than_the_budget_is_not_waited_out(world: World) -> None:
    await world.store.directory.upsert_recipient(person("guardian-9", phone="+15555550123"))
    world.sms.script.append(TransientProviderError("sms-fake", "HTTP 429", retry_after=3600))

    report = await deliver_request(request("guardian-9"), world.deps)

    [failed] = [e for e in report.outcomes if e.channel is Channel.SMS]
    assert (failed.status, failed.reason) == (DeliveryStatus.FAILED, Reason.PROVIDER_ERROR)
    assert len(world.sms.sent) == 1


async def test_a_finished_request_redelivered_sends_nothing_and_republishes_the_same_events(
    world: World,
) -> None:
    await world.store.directory.upsert_recipient(person("guardian-9", phone="+15555550123"))
    await deliver_request(request("guardian-9"), world.deps)
    first = {
        (e.event_id, e.status)
        for e in world.events.published
        if e.status is not DeliveryStatus.QUEUED
    }

    report = await deliver_request(request("guardian-9"), world.deps)

    assert len(world.sms.sent) == 1
    assert report.repeated == 2
    assert {(e.event_id, e.status) for e in report.outcomes} == first


async def test_someone_not_in_the_directory_is_skipped_as_unknown(world: World) -> None:
    report = await deliver_request(request("guardian-missing"), world.deps)

    [skipped] = report.outcomes
    assert (skipped.status, skipped.reason) == (DeliveryStatus.SKIPPED, Reason.UNKNOWN_RECIPIENT)


async def test_the_sender_listed_among_recipients_is_not_told(world: World) -> None:
    await world.store.directory.upsert_recipient(
        person("staff-rivera", Role.STAFF, email="rivera@school.example")
    )
    report = await deliver_request(request("staff-rivera"), world.deps)
    assert report.outcomes == ()
    assert world.email.sent == []


async def test_spanish_speaker_gets_the_translation_with_a_spanish_label(world: World) -> None:
    await world.store.directory.upsert_recipient(
        person("guardian-lucia", first_name="Lucía", language="es", phone="+15555550188")
    )

    await deliver_request(request("guardian-lucia"), world.deps)

    [sms] = world.sms.sent
    assert sms.sms is not None
    assert (
        sms.sms.body == "Para Lucía: Ms. Rivera: Los formularios de la excursión vencen el viernes."
    )
    [inbox] = await world.store.inbox.inbox("guardian-lucia")
    assert inbox["body"] == "Los formularios de la excursión vencen el viernes."


@dataclass
class CountingTranslator:
    """A translator (the port) that answers once let go, so that two callers overlap."""

    asked: int = 0
    first_asked: asyncio.Event = field(default_factory=asyncio.Event)
    answer: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def provider(self) -> str:
        return "counting"

    async def translate(self, text: str, *, source: str, target: str) -> str:
        self.asked += 1
        self.first_asked.set()
        await self.answer.wait()
        return f"[{target}] {text}"

    def close(self) -> None:
        pass


async def test_two_copies_of_a_message_in_flight_at_once_are_translated_once(
    world: World,
) -> None:
    await world.store.directory.upsert_recipient(
        person("guardian-an", first_name="An", language="vi", phone="+15555550177")
    )
    translator = CountingTranslator()
    deps = replace(world.deps, translator=translator)
    untranslated = replace(request("guardian-an"), translations={})

    both = asyncio.gather(
        deliver_request(untranslated, deps),
        deliver_request(replace(untranslated, request_id="req-again"), deps),
    )
    await asyncio.wait_for(translator.first_asked.wait(), timeout=10)
    for _ in range(20):  # the second copy has every chance to ask too
        await asyncio.sleep(0)
    translator.answer.set()
    await both

    assert translator.asked == 1
    assert await world.store.translations.cached_translation("msg-1", "vi") == (
        "[vi] Field trip forms are due Friday."
    )
    assert deps.in_progress.translating == {}, "nothing kept once the call is done"


async def test_delivery_latency_is_measured_from_request_creation(world: World) -> None:
    await world.store.directory.upsert_recipient(person("guardian-9", phone="+15555550123"))
    await deliver_request(request("guardian-9"), world.deps)

    count = world.metrics.registry.get_sample_value(
        "notifier_delivery_latency_seconds_count", {"channel": "sms"}
    )
    total = world.metrics.registry.get_sample_value(
        "notifier_delivery_latency_seconds_sum", {"channel": "sms"}
    )
    assert count == 1
    assert total is not None
    assert 1.0 <= total < 2.0, "the stepping clock starts one second after created_at"


async def test_two_people_on_one_phone_get_one_text_labelled_for_both(world: World) -> None:
    await world.store.directory.upsert_recipient(
        person("guardian-dennis", first_name="Dennis", phone="+15555550123")
    )
    await world.store.directory.upsert_recipient(
        person("guardian-maya", first_name="Maya", phone="+15555550123")
    )

    report = await deliver_request(request("guardian-dennis", "guardian-maya"), world.deps)

    [text] = world.sms.sent
    assert text.sms is not None
    assert text.sms.body.startswith("For Dennis and Maya: Ms. Rivera: ")
    sms = [e for e in report.outcomes if e.channel is Channel.SMS]
    assert sorted(e.recipient_id for e in sms) == ["guardian-dennis", "guardian-maya"]
    assert {e.status for e in sms} == {DeliveryStatus.SENT}
    assert len({e.provider_message_id for e in sms}) == 1, "both point at the one text"


async def test_people_on_one_phone_with_different_languages_get_a_text_each(world: World) -> None:
    await world.store.directory.upsert_recipient(
        person("guardian-dennis", first_name="Dennis", phone="+15555550123")
    )
    await world.store.directory.upsert_recipient(
        person("guardian-lucia", first_name="Lucía", language="es", phone="+15555550123")
    )

    await deliver_request(request("guardian-dennis", "guardian-lucia"), world.deps)

    bodies = sorted(m.sms.body[:12] for m in world.sms.sent if m.sms)
    assert bodies == ["For Dennis: ", "Para Lucía: "]


async def test_a_shared_text_redelivered_is_not_sent_again(world: World) -> None:
    await world.store.directory.upsert_recipient(
        person("guardian-dennis", first_name="Dennis", phone="+15555550123")
    )
    await world.store.directory.upsert_recipient(
        person("guardian-maya", first_name="Maya", phone="+15555550123")
    )
    world.sms.delay_seconds = 0.05

    await asyncio.gather(
        deliver_request(request("guardian-dennis", "guardian-maya"), world.deps),
        deliver_request(request("guardian-dennis", "guardian-maya"), world.deps),
    )
    again = await deliver_request(request("guardian-dennis", "guardian-maya"), world.deps)

    assert len(world.sms.sent) == 1
    assert again.repeated == len(again.outcomes)


async def test_a_long_message_is_shortened_to_three_texts_ending_with_read_more(
    world: World,
) -> None:
    await world.store.directory.upsert_recipient(person("guardian-9", phone="+15555550123"))
    long_body = " ".join(["The field trip bus leaves from the north entrance."] * 30)

    await deliver_request(replace(request("guardian-9"), body=long_body), world.deps)

    [text] = world.sms.sent
    assert text.sms is not None
    assert text.sms.body.endswith("Read more in the app.")
    assert (text.sms.segments, text.sms.encoding) == (3, "gsm_7")
    [stored] = [
        r
        for r in await world.store.ledger.deliveries_of_message("msg-1")
        if r.channel is Channel.SMS
    ]
    assert world.store.ledger.sms_costs[stored.delivery_id] == (3, "gsm_7")
    assert (
        world.metrics.registry.get_sample_value(
            "notifier_sms_segments_total", {"encoding": "gsm_7"}
        )
        == 3
    )


async def test_a_short_text_with_a_curly_quote_stays_one_gsm_segment(world: World) -> None:
    await world.store.directory.upsert_recipient(person("guardian-9", phone="+15555550123"))

    await deliver_request(
        replace(request("guardian-9"), body="Don’t forget: forms are due Friday."), world.deps
    )

    [text] = world.sms.sent
    assert text.sms is not None
    assert "Don't forget" in text.sms.body
    assert (text.sms.segments, text.sms.encoding) == (1, "gsm_7")


async def test_a_family_sharing_one_inbox_gets_one_email_greeting_everyone(world: World) -> None:
    family = "park.family@example.org"
    for recipient_id, name in (("guardian-dennis", "Dennis"), ("guardian-maya", "Maya")):
        await world.store.directory.upsert_recipient(
            person(recipient_id, first_name=name, preferred_channel=Channel.EMAIL, email=family)
        )

    report = await deliver_request(request("guardian-dennis", "guardian-maya"), world.deps)

    [mail] = world.email.sent
    assert mail.email is not None
    assert mail.email.text.startswith("Hello Dennis and Maya,")
    emails = [e for e in report.outcomes if e.channel is Channel.EMAIL]
    assert len(emails) == 2
    assert len({e.provider_message_id for e in emails}) == 1


async def test_the_email_says_when_it_was_sent_in_the_readers_language_and_district_time(
    world: World,
) -> None:
    # CREATED is 15:00 UTC: 09:00 in the district's America/Chicago.
    await world.store.directory.upsert_recipient(
        person(
            "guardian-lucia",
            first_name="Lucía",
            language="es",
            email="lucia@example.org",
            preferred_channel=Channel.EMAIL,
        )
    )

    await deliver_request(request("guardian-lucia"), world.deps)

    [mail] = world.email.sent
    assert mail.email is not None
    assert "Enviado: 28 nov 2026, 9:00" in mail.email.text


async def test_a_bilingual_district_texts_a_shared_phone_once_in_both_languages(
    world: World,
) -> None:
    await world.store.directory.upsert_district(district(bilingual_shared_texts=True))
    await world.store.directory.upsert_recipient(
        person("guardian-dennis", first_name="Dennis", phone="+15555550123")
    )
    await world.store.directory.upsert_recipient(
        person("guardian-lucia", first_name="Lucía", language="es", phone="+15555550123")
    )

    report = await deliver_request(request("guardian-dennis", "guardian-lucia"), world.deps)

    [text] = world.sms.sent
    assert text.sms is not None
    assert text.sms.body == (
        "For Dennis and Lucía: Ms. Rivera: Field trip forms are due Friday.\n\n"
        "Para Dennis y Lucía: Ms. Rivera: Los formularios de la excursión vencen el viernes."
    )
    languages = {e.recipient_id: e.language for e in report.outcomes if e.channel is Channel.SMS}
    assert languages == {"guardian-dennis": "en", "guardian-lucia": "es"}


class DatabaseGoneWhileRecording:
    """The ledger, except that recording a text's outcome fails ``times`` times (the
    database went away between Twilio's answer and the write)."""

    def __init__(self, ledger: MemoryLedger, times: int) -> None:
        self._ledger = ledger
        self.times = times

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ledger, name)

    async def record_event(self, event: Any, **kwargs: Any) -> None:
        if self.times and event.channel is Channel.SMS:
            self.times -= 1
            raise ConnectionError("the database went away")
        await self._ledger.record_event(event, **kwargs)


async def delivered_after_retries(sent: SendRequest, deps: DeliveryDependencies) -> None:
    """Deliver as the consumer does: the whole request again after a failure."""
    for _ in range(5):
        try:
            await deliver_request(sent, deps)
        except ConnectionError:
            continue
        return
    raise AssertionError("still failing after 5 tries")


async def test_an_answer_that_could_not_be_recorded_is_recorded_on_retry_not_sent_again(
    world: World,
) -> None:
    await world.store.directory.upsert_recipient(person("guardian-9", phone="+15555550123"))
    flaky = DatabaseGoneWhileRecording(world.store.ledger, times=1)
    deps = replace(world.deps, ledger=flaky)  # type: ignore[arg-type]

    await delivered_after_retries(request("guardian-9"), deps)

    assert len(world.sms.sent) == 1, "the person is not texted twice"
    [stored] = [
        r
        for r in await world.store.ledger.deliveries_of_message("msg-1")
        if r.channel is Channel.SMS
    ]
    assert (stored.status, stored.attempts) == (DeliveryStatus.SENT, 1)
    assert stored.provider_message_id == "sms-fake-1"


async def test_one_text_for_a_shared_phone_is_recorded_for_everyone_on_retry(
    world: World,
) -> None:
    for recipient_id, name in (("guardian-dennis", "Dennis"), ("guardian-maya", "Maya")):
        await world.store.directory.upsert_recipient(
            person(recipient_id, first_name=name, phone="+15555550123")
        )
    deps = replace(world.deps, ledger=DatabaseGoneWhileRecording(world.store.ledger, times=2))  # type: ignore[arg-type]

    await delivered_after_retries(request("guardian-dennis", "guardian-maya"), deps)

    assert len(world.sms.sent) == 1
    stored = await world.store.ledger.deliveries_of_message("msg-1")
    assert {r.recipient_id: r.status for r in stored if r.channel is Channel.SMS} == {
        "guardian-dennis": DeliveryStatus.SENT,
        "guardian-maya": DeliveryStatus.SENT,
    }


async def test_an_inbox_copy_is_one_sent_event_and_one_ledger_row(world: World) -> None:
    await world.store.directory.upsert_recipient(person("student-sam", Role.STUDENT))

    await deliver_request(request("student-sam"), world.deps)

    app_events = [e for e in world.events.published if e.channel is Channel.APP]
    assert [(e.status, e.provider) for e in app_events] == [(DeliveryStatus.SENT, "app-inbox")]
    [row] = await world.store.ledger.deliveries_of_message("msg-1")
    assert (row.status, row.sent_at is not None) == (DeliveryStatus.SENT, True)
    assert len(await world.store.inbox.inbox("student-sam")) == 1


async def test_an_inbox_copy_left_queued_by_an_older_version_is_finished_once(
    world: World,
) -> None:
    # Before inbox copies were claimed as sent, a process that died between the claim and
    # the copy left the app delivery "queued" with no copy written.
    await world.store.directory.upsert_recipient(person("student-sam", Role.STUDENT))
    await world.store.ledger.claim_delivery(
        delivery_record(
            message_id="msg-1",
            recipient_id="student-sam",
            channel=Channel.APP,
            address=None,
            route=Route.APP_ONLY,
            language="en",
        )
    )

    await deliver_request(request("student-sam"), world.deps)
    await deliver_request(request("student-sam"), world.deps)

    assert len(await world.store.inbox.inbox("student-sam")) == 1
    [row] = await world.store.ledger.deliveries_of_message("msg-1")
    assert row.status is DeliveryStatus.SENT

"""The stream path end to end on the real local Kafka broker.

Each test gets its own topics and consumer group, a fresh SQLite store, and fake Twilio and
SendGrid servers that the real adapters (and SDK) talk HTTP to. Nothing of ours is patched.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from pydantic import SecretStr

from notifier.adapters.catalogs import GettextCatalogs
from notifier.bootstrap import Container, open_container
from notifier.config import (
    DatabaseSettings,
    DeepLSettings,
    KafkaSettings,
    SendGridSettings,
    Settings,
    TranslationSettings,
    TwilioSettings,
)
from notifier.entrypoints.consumer import register_subscribers
from tests.conftest import TEST_TOPIC_PREFIX, kafka_bootstrap
from tests.fakes.deepl_server import FakeDeepL
from tests.fakes.sendgrid_server import FakeSendGrid
from tests.fakes.twilio_server import FakeTwilio

pytestmark = pytest.mark.kafka

WAIT_SECONDS = 30.0
SHARED_PHONE = "+15555550123"

DISTRICT: dict[str, Any] = {
    "schema": "district/1",
    "id": "d-springfield",
    "name": "Springfield Public Schools",
    "default_channel": "email",
    "role_channels": {"guardian": "sms"},
    "default_language": "en",
    "languages": ["en", "es", "vi", "ar"],
    "sms_label": True,
    "max_recipients": 15,
    "timezone": "America/Chicago",
    "sms_sender": "MG00000000000000000000000000000000",
    "email_from": {"email": "no-reply@springfield.example", "name": "Springfield Schools"},
    "reply_domain": "reply.springfield.example",
}


def recipient(recipient_id: str, first_name: str, role: str, **fields: Any) -> dict[str, Any]:
    return {
        "schema": "recipient/1",
        "id": recipient_id,
        "district_id": "d-springfield",
        "display_name": f"{first_name} Park",
        "first_name": first_name,
        "role": role,
        "language": "en",
        "preferred_channel": None,
        "phone": None,
        "email": None,
        "app": True,
        "updated_at": "2026-11-20T10:00:00Z",
    } | fields


DIRECTORY = [
    recipient("guardian-dennis", "Dennis", "guardian", phone=SHARED_PHONE),
    recipient("guardian-maya", "Maya", "guardian", phone=SHARED_PHONE),
    recipient(
        "guardian-lucia",
        "Lucía",
        "guardian",
        language="es",
        phone="+15555550188",
        email="lucia@example.org",
    ),
    recipient("staff-chen", "Wei", "staff", phone="+15555550177", email="wei@springfield.example"),
    recipient("student-sam", "Sam", "student"),
]


def send_request(message_id: str, recipients: list[str], **fields: Any) -> dict[str, Any]:
    return {
        "schema": "send-request/1",
        "request_id": str(uuid.uuid4()),
        "message_id": message_id,
        "conversation_id": "conv-77",
        "district_id": "d-springfield",
        "kind": "conversation.message",
        "sender": {"id": "staff-rivera", "display_name": "Ms. Rivera", "role": "staff"},
        "body": "Field trip forms are due Friday.",
        "language": "en",
        "translations": {"es": "Los formularios de la excursión vencen el viernes."},
        "recipients": [{"id": r} for r in recipients],
        "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    } | fields


@dataclass
class Topic:
    """Reads one topic from its beginning, keeping every record seen."""

    name: str
    consumer: AIOKafkaConsumer
    records: list[ConsumerRecord[bytes, bytes]] = field(default_factory=list)

    async def wait_for(
        self, done: Callable[[list[ConsumerRecord[bytes, bytes]]], bool], what: str
    ) -> list[ConsumerRecord[bytes, bytes]]:
        deadline = time.monotonic() + WAIT_SECONDS
        while not done(self.records):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what} on {self.name}")
            batches = await self.consumer.getmany(timeout_ms=200)
            for batch in batches.values():
                self.records.extend(batch)
        return self.records

    async def settle(self, seconds: float = 0.5) -> list[ConsumerRecord[bytes, bytes]]:
        """Every record so far, after reading on for ``seconds`` (room for a wrong extra
        record to show up)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            batches = await self.consumer.getmany(timeout_ms=100)
            for batch in batches.values():
                self.records.extend(batch)
        return self.records

    def events(self) -> list[dict[str, Any]]:
        return [orjson.loads(r.value) for r in self.records if r.value is not None]


@dataclass
class Pipeline:
    settings: Settings
    producer: AIOKafkaProducer
    twilio: FakeTwilio
    sendgrid: FakeSendGrid
    events: Topic
    dead_letters: Topic
    container: Container | None = None

    async def start_service(self) -> Container:
        container = await open_container(self.settings)
        register_subscribers(container)
        await container.start()
        self.container = container
        return container

    async def stop_service(self) -> None:
        if self.container is not None:
            await self.container.close()
            self.container = None

    async def publish(self, topic: str, value: dict[str, Any] | bytes | None, key: str) -> None:
        payload = orjson.dumps(value) if isinstance(value, dict) else value
        await self.producer.send_and_wait(topic, payload, key=key.encode())

    async def load_directory(self, recipients: list[dict[str, Any]]) -> None:
        kafka = self.settings.kafka
        await self.publish(kafka.districts_topic, DISTRICT, DISTRICT["id"])
        for profile in recipients:
            await self.publish(kafka.recipients_topic, profile, profile["id"])
        assert self.container is not None
        store = self.container.store
        deadline = time.monotonic() + WAIT_SECONDS
        while len(await store.directory.recipients(r["id"] for r in recipients)) < len(
            recipients
        ) or (await store.directory.district(DISTRICT["id"]) is None):
            assert time.monotonic() < deadline, "the directory never reached the store"
            await asyncio.sleep(0.05)

    async def send(self, request: dict[str, Any]) -> None:
        await self.publish(
            self.settings.kafka.send_requests_topic, request, request["conversation_id"]
        )

    async def final_events(self, message_id: str, count: int) -> list[dict[str, Any]]:
        """Wait until ``count`` deliveries of the message reached a state past ``queued``."""

        def finished(records: list[ConsumerRecord[bytes, bytes]]) -> bool:
            return len(_final(self.events.events(), message_id)) >= count

        await self.events.wait_for(finished, f"{count} final delivery events of {message_id}")
        return _final(self.events.events(), message_id)


def _final(events: list[dict[str, Any]], message_id: str) -> list[dict[str, Any]]:
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for event in events:
        if event["message_id"] == message_id and event["status"] != "queued":
            latest[(event["recipient_id"], event["channel"])] = event
    return list(latest.values())


async def _reader(topic: str, partitions: int) -> Topic:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka_bootstrap(), auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
    return Topic(topic, consumer)


SettingsChange = Callable[[Settings, FakeTwilio, FakeSendGrid], Settings]


@asynccontextmanager
async def running_pipeline(
    tmp_path: Path, change: SettingsChange | None = None
) -> AsyncIterator[Pipeline]:
    """The service on its own topics, group and store, talking to fresh fake providers;
    ``change`` adjusts the settings before it starts."""
    run = uuid.uuid4().hex[:10]
    kafka = KafkaSettings(
        bootstrap_servers=kafka_bootstrap(),
        group_id=f"notifier-test-{run}",
        send_requests_topic=f"{TEST_TOPIC_PREFIX}{run}.conversation.send-requests",
        recipients_topic=f"{TEST_TOPIC_PREFIX}{run}.directory.recipients",
        districts_topic=f"{TEST_TOPIC_PREFIX}{run}.directory.districts",
        conversation_state_topic=f"{TEST_TOPIC_PREFIX}{run}.conversation.state",
        replies_topic=f"{TEST_TOPIC_PREFIX}{run}.conversation.replies",
        delivery_events_topic=f"{TEST_TOPIC_PREFIX}{run}.notifier.delivery-events",
        dead_letter_topic=f"{TEST_TOPIC_PREFIX}{run}.notifier.dead-letter",
        partitions=3,
        batch_timeout_ms=20,
        graceful_timeout_seconds=10,
    )
    with FakeTwilio() as twilio, FakeSendGrid() as sendgrid:
        settings = Settings(
            kafka=kafka,
            database=DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path}/notifier.db"),
            twilio=TwilioSettings(
                account_sid=twilio.account_sid,
                auth_token=SecretStr(twilio.auth_token),
                api_base_url=twilio.base_url,
            ),
            sendgrid=SendGridSettings(
                api_key=SecretStr(sendgrid.api_key), api_base_url=sendgrid.base_url
            ),
        )
        if change is not None:
            settings = change(settings, twilio, sendgrid)
        producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all")
        await producer.start()
        line = Pipeline(settings, producer, twilio, sendgrid, events=None, dead_letters=None)  # type: ignore[arg-type]
        await line.start_service()  # creates the topics
        line.events = await _reader(kafka.delivery_events_topic, kafka.partitions)
        line.dead_letters = await _reader(kafka.dead_letter_topic, 1)
        try:
            yield line
        finally:
            await line.stop_service()
            await line.events.consumer.stop()
            await line.dead_letters.consumer.stop()
            await producer.stop()


@pytest.fixture
async def pipeline(tmp_path: Path) -> AsyncIterator[Pipeline]:
    async with running_pipeline(tmp_path) as line:
        yield line


def _by_recipient(events: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(e["recipient_id"], e["channel"]): e for e in events}


async def test_each_recipient_is_told_on_their_channel_in_their_language(
    pipeline: Pipeline,
) -> None:
    await pipeline.load_directory(DIRECTORY)
    everyone = [r["id"] for r in DIRECTORY] + ["staff-rivera"]  # the sender is listed too
    await pipeline.send(send_request("msg-1", everyone))

    final = _by_recipient(await pipeline.final_events("msg-1", count=9))

    assert {key: e["status"] for key, e in final.items()} == {
        ("guardian-dennis", "sms"): "sent",
        ("guardian-dennis", "app"): "sent",
        ("guardian-maya", "sms"): "sent",
        ("guardian-maya", "app"): "sent",
        ("guardian-lucia", "sms"): "sent",
        ("guardian-lucia", "app"): "sent",
        ("staff-chen", "email"): "sent",
        ("staff-chen", "app"): "sent",
        ("student-sam", "app"): "sent",
    }, "the sender is never told of their own message"
    assert final[("guardian-lucia", "sms")]["route"] == "role_default"
    assert final[("staff-chen", "email")]["route"] == "district_default"
    assert final[("student-sam", "app")]["route"] == "app_only"
    assert final[("guardian-lucia", "sms")]["language"] == "es"

    texts = sorted((m["To"], m["Body"]) for m in (r.form for r in pipeline.twilio.received))
    assert texts == [
        # One text for the two guardians sharing a phone, labelled for both.
        (SHARED_PHONE, "For Dennis and Maya: Ms. Rivera: Field trip forms are due Friday."),
        (
            "+15555550188",
            "Para Lucía: Ms. Rivera: Los formularios de la excursión vencen el viernes.",
        ),
    ]
    assert all(
        r.form["MessagingServiceSid"] == DISTRICT["sms_sender"] for r in pipeline.twilio.received
    )
    sms_sids = {m["sid"] for m in pipeline.twilio.messages}
    assert {
        final[(r, "sms")]["provider_message_id"]
        for r in ("guardian-dennis", "guardian-maya", "guardian-lucia")
    } == sms_sids
    assert (
        final[("guardian-dennis", "sms")]["provider_message_id"]
        == final[("guardian-maya", "sms")]["provider_message_id"]
    ), "a delivery per person, both pointing at the one text"

    [mail] = pipeline.sendgrid.accepted
    [personalization] = mail.body["personalizations"]
    assert personalization["to"] == [{"email": "wei@springfield.example"}]
    assert mail.body["custom_args"]["notifier_message_id"] == "msg-1"
    assert mail.body["custom_args"]["notifier_recipient_id"] == "staff-chen"
    assert final[("staff-chen", "email")]["provider_message_id"] == mail.message_id

    statuses = [
        e["status"]
        for e in pipeline.events.events()
        if e["recipient_id"] == "guardian-dennis" and e["channel"] == "sms"
    ]
    assert statuses == ["queued", "sent"], "every state change is published, in order"


async def test_a_request_published_twice_notifies_nobody_twice(pipeline: Pipeline) -> None:
    await pipeline.load_directory(DIRECTORY)
    request = send_request("msg-dup", ["guardian-dennis", "staff-chen"])
    await pipeline.send(request)
    await pipeline.send(request)
    await pipeline.final_events("msg-dup", count=4)
    await asyncio.sleep(0.5)  # give a wrongly repeated send time to show up

    assert [r.form["Body"] for r in pipeline.twilio.received] == [
        "For Dennis: Ms. Rivera: Field trip forms are due Friday."
    ]
    assert len(pipeline.sendgrid.received) == 1


async def test_redelivery_after_a_restart_before_commit_notifies_nobody_twice(
    pipeline: Pipeline,
) -> None:
    await pipeline.load_directory(DIRECTORY)
    await pipeline.send(send_request("msg-redelivered", ["guardian-dennis", "staff-chen"]))
    await pipeline.final_events("msg-redelivered", count=4)
    await pipeline.stop_service()

    # What a consumer that died before committing sees on restart: the same records again.
    await _rewind_group(pipeline.settings.kafka)
    sent_before = len(pipeline.events.records)
    await pipeline.start_service()

    # The known outcomes are published again (same event ids), nothing is sent again.
    await pipeline.events.wait_for(
        lambda records: len(records) >= sent_before + 4, "the redelivered request's events"
    )
    repeated = [orjson.loads(r.value) for r in pipeline.events.records[sent_before:]]
    first = {e["event_id"] for e in pipeline.events.events()[:sent_before]}
    assert {e["event_id"] for e in repeated} <= first
    assert len(pipeline.twilio.received) == 1
    assert len(pipeline.sendgrid.received) == 1


async def _rewind_group(kafka: KafkaSettings) -> None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka.bootstrap_servers, group_id=kafka.group_id, enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(kafka.send_requests_topic, p) for p in range(kafka.partitions)]
        consumer.assign(partitions)
        await consumer.commit(dict.fromkeys(partitions, 0))
    finally:
        await consumer.stop()


async def test_invalid_json_is_dead_lettered_and_the_next_request_is_delivered(
    pipeline: Pipeline,
) -> None:
    await pipeline.load_directory(DIRECTORY)
    garbage = b'{"schema": "send-request/1", "body": '
    await pipeline.publish(pipeline.settings.kafka.send_requests_topic, garbage, "conv-77")
    await pipeline.send(send_request("msg-after-garbage", ["guardian-dennis"]))

    await pipeline.final_events("msg-after-garbage", count=2)
    [dead] = await pipeline.dead_letters.wait_for(
        lambda records: len(records) >= 1, "a dead letter"
    )
    headers = {k: v.decode() for k, v in dead.headers}
    assert dead.value == garbage, "the original bytes are kept"
    assert dead.key == b"conv-77"
    assert headers["x-notifier-error"] == "invalid_json"
    assert headers["x-notifier-source-topic"] == pipeline.settings.kafka.send_requests_topic
    assert int(headers["x-notifier-source-offset"]) >= 0
    assert headers["x-notifier-detail"]


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"schema": "send-request/2"}, "schema_error"),
        ({"recipients": []}, "schema_error"),
        ({"district_id": "d-nowhere"}, "unknown_district"),
        ({"recipients": [{"id": f"guardian-{n}"} for n in range(16)]}, "too_many_recipients"),
    ],
)
async def test_unprocessable_requests_are_dead_lettered_with_their_reason(
    pipeline: Pipeline, change: dict[str, Any], code: str
) -> None:
    await pipeline.load_directory(DIRECTORY)
    await pipeline.send(send_request("msg-bad", ["guardian-dennis"]) | change)
    await pipeline.send(send_request("msg-good", ["guardian-dennis"]))

    await pipeline.final_events("msg-good", count=2)
    [dead] = await pipeline.dead_letters.wait_for(
        lambda records: len(records) >= 1, "a dead letter"
    )
    assert dict(dead.headers)["x-notifier-error"].decode() == code
    assert not [e for e in pipeline.events.events() if e["message_id"] == "msg-bad"]


async def test_directory_tombstone_removes_the_person_and_later_requests_skip_them(
    pipeline: Pipeline,
) -> None:
    await pipeline.load_directory(DIRECTORY)
    await pipeline.publish(pipeline.settings.kafka.recipients_topic, None, "guardian-maya")
    assert pipeline.container is not None
    deadline = time.monotonic() + WAIT_SECONDS
    while "guardian-maya" in await pipeline.container.store.directory.recipients(["guardian-maya"]):
        assert time.monotonic() < deadline, "the tombstone was never applied"
        await asyncio.sleep(0.05)

    await pipeline.send(send_request("msg-after-tombstone", ["guardian-maya", "guardian-dennis"]))
    final = _by_recipient(await pipeline.final_events("msg-after-tombstone", count=3))

    assert final[("guardian-maya", "app")]["status"] == "skipped"
    assert final[("guardian-maya", "app")]["reason"] == "unknown_recipient"
    assert [r.form["Body"][:11] for r in pipeline.twilio.received] == ["For Dennis:"]


async def test_an_older_directory_event_does_not_overwrite_a_newer_one(pipeline: Pipeline) -> None:
    newer = recipient(
        "guardian-dennis",
        "Dennis",
        "guardian",
        phone="+15555550199",
        updated_at="2026-11-25T10:00:00Z",
    )
    older = recipient(
        "guardian-dennis",
        "Dennis",
        "guardian",
        phone=SHARED_PHONE,
        updated_at="2026-11-20T10:00:00Z",
    )
    await pipeline.load_directory([newer])
    await pipeline.publish(pipeline.settings.kafka.recipients_topic, older, "guardian-dennis")
    await pipeline.send(send_request("msg-newest-profile", ["guardian-dennis"]))

    await pipeline.final_events("msg-newest-profile", count=2)
    assert [r.form["To"] for r in pipeline.twilio.received] == ["+15555550199"]


async def test_the_service_creates_the_contract_topics_with_compacted_directory_topics(
    pipeline: Pipeline,
) -> None:
    kafka = pipeline.settings.kafka
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    await admin.start()
    try:
        names = [
            kafka.send_requests_topic,
            kafka.recipients_topic,
            kafka.districts_topic,
            kafka.delivery_events_topic,
            kafka.dead_letter_topic,
        ]
        responses = await admin.describe_configs(
            [
                ConfigResource(ConfigResourceType.TOPIC, name, {"cleanup.policy": None})
                for name in names
            ]
        )
        policies = {
            resource[3]: dict((entry[0], entry[1]) for entry in resource[4])["cleanup.policy"]
            for response in responses
            for resource in response.resources
        }
        described = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics(names)}
    finally:
        await admin.close()

    assert policies == {
        kafka.send_requests_topic: "delete",
        kafka.recipients_topic: "compact",
        kafka.districts_topic: "compact",
        kafka.delivery_events_topic: "delete",
        kafka.dead_letter_topic: "delete",
    }
    assert described[kafka.send_requests_topic] == kafka.partitions
    assert described[kafka.recipients_topic] == kafka.partitions


async def test_a_number_twilio_rejects_ends_in_a_failed_event_with_its_reason(
    pipeline: Pipeline,
) -> None:
    invalid = recipient("guardian-invalid", "Ivy", "guardian", phone="+15005550001")
    await pipeline.load_directory([invalid])
    await pipeline.send(send_request("msg-invalid-number", ["guardian-invalid"]))

    final = _by_recipient(await pipeline.final_events("msg-invalid-number", count=2))

    sms = final[("guardian-invalid", "sms")]
    assert (sms["status"], sms["reason"], sms["provider"]) == (
        "failed",
        "invalid_address",
        "twilio",
    )
    assert final[("guardian-invalid", "app")]["status"] == "sent", "the inbox copy still arrives"


async def test_a_number_twilio_refuses_fails_over_to_email_at_once_and_after(
    pipeline: Pipeline,
) -> None:
    person = recipient(
        "guardian-ivy", "Ivy", "guardian", phone="+15005550001", email="ivy@example.org"
    )
    await pipeline.load_directory([person])
    await pipeline.send(send_request("msg-refused", ["guardian-ivy"]))

    final = _by_recipient(await pipeline.final_events("msg-refused", count=3))

    assert (final[("guardian-ivy", "sms")]["status"], final[("guardian-ivy", "sms")]["reason"]) == (
        "failed",
        "invalid_address",
    )
    email = final[("guardian-ivy", "email")]
    assert (email["status"], email["route"], email["fallback_from"]) == (
        "sent",
        "failover_rejected",
        "sms",
    )

    await pipeline.send(send_request("msg-after-refusal", ["guardian-ivy"]))
    later = _by_recipient(await pipeline.final_events("msg-after-refusal", count=2))
    assert later[("guardian-ivy", "email")]["route"] == "contact_point_failing"
    assert len(pipeline.twilio.received) == 1, "the invalid number is not tried again"


@asynccontextmanager
async def translating_pipeline(tmp_path: Path) -> AsyncIterator[tuple[Pipeline, FakeDeepL]]:
    with FakeDeepL() as deepl:

        def with_deepl(settings: Settings, twilio: FakeTwilio, sendgrid: FakeSendGrid) -> Settings:
            return settings.model_copy(
                update={
                    "translation": TranslationSettings(provider="deepl", timeout_seconds=2),
                    "deepl": DeepLSettings(
                        auth_key=SecretStr(deepl.auth_key), server_url=deepl.base_url
                    ),
                }
            )

        async with running_pipeline(tmp_path, with_deepl) as line:
            yield line, deepl


VIETNAMESE_GUARDIAN = recipient(
    "guardian-an", "An", "guardian", language="vi", phone="+15555550155"
)


async def test_a_vietnamese_guardian_gets_a_translated_text_with_a_vietnamese_label(
    tmp_path: Path,
) -> None:
    async with translating_pipeline(tmp_path) as (line, deepl):
        await line.load_directory([VIETNAMESE_GUARDIAN])
        await line.send(send_request("msg-vi", ["guardian-an"]))
        await line.send(send_request("msg-vi", ["guardian-an"]))  # translated once, not twice
        await line.final_events("msg-vi", count=2)

        [text] = [r.form["Body"] for r in line.twilio.received]
        assert text == "Gửi An: Ms. Rivera: [VI] Field trip forms are due Friday."
        assert len(deepl.received) == 1


async def test_a_translator_outage_still_delivers_the_original_with_the_note(
    tmp_path: Path,
) -> None:
    async with translating_pipeline(tmp_path) as (line, deepl):
        deepl.fail_next(status=503, count=100)
        await line.load_directory([VIETNAMESE_GUARDIAN])
        await line.send(send_request("msg-vi-outage", ["guardian-an"]))

        final = _by_recipient(await line.final_events("msg-vi-outage", count=2))

        assert final[("guardian-an", "sms")]["status"] == "sent"
        [text] = [r.form["Body"] for r in line.twilio.received]
        assert text.startswith("Gửi An: Ms. Rivera: Field trip forms are due Friday.")
        note = (
            GettextCatalogs().wording("vi").gettext("(This message is in its original language.)")
        )
        assert note in text


async def test_an_arabic_speaker_gets_a_right_to_left_email(pipeline: Pipeline) -> None:
    layla = recipient(
        "staff-layla", "Layla", "staff", language="ar", email="layla@springfield.example"
    )
    await pipeline.load_directory([layla])
    await pipeline.send(
        send_request(
            "msg-ar",
            ["staff-layla"],
            translations={"ar": "يجب تسليم استمارات الرحلة يوم الجمعة."},
        )
    )
    await pipeline.final_events("msg-ar", count=2)

    [mail] = pipeline.sendgrid.accepted
    html = next(c["value"] for c in mail.body["content"] if c["type"] == "text/html")
    assert '<html lang="ar" dir="rtl">' in html
    assert '<blockquote lang="ar" dir="rtl">' in html
    assert "يجب تسليم استمارات الرحلة يوم الجمعة." in html


def conversation_state(
    muted_by: list[str], updated_at: str, status: str = "open"
) -> dict[str, Any]:
    return {
        "schema": "conversation-state/1",
        "conversation_id": "conv-77",
        "status": status,
        "muted_by": muted_by,
        "updated_at": updated_at,
    }


async def test_a_participant_who_muted_the_conversation_gets_only_the_inbox_copy(
    pipeline: Pipeline,
) -> None:
    await pipeline.load_directory(DIRECTORY)
    topic = pipeline.settings.kafka.conversation_state_topic
    await pipeline.publish(
        topic, conversation_state(["guardian-lucia"], "2026-11-28T10:00:00Z"), "conv-77"
    )
    # An older state arriving late must not unmute her.
    await pipeline.publish(topic, conversation_state([], "2026-11-27T10:00:00Z"), "conv-77")
    assert pipeline.container is not None
    deadline = time.monotonic() + WAIT_SECONDS
    while (state := await pipeline.container.store.directory.conversation_state("conv-77")) is None:
        assert time.monotonic() < deadline, "the conversation state never reached the store"
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # let the late, older state be applied (and ignored)

    await pipeline.send(send_request("msg-muted", ["guardian-lucia", "guardian-dennis"]))
    final = _by_recipient(await pipeline.final_events("msg-muted", count=4))

    muted = final[("guardian-lucia", "sms")]
    assert (muted["status"], muted["reason"]) == ("suppressed", "muted")
    assert final[("guardian-lucia", "app")]["status"] == "sent"
    assert final[("guardian-dennis", "sms")]["status"] == "sent"
    assert [r.form["To"] for r in pipeline.twilio.received] == [SHARED_PHONE]
    assert pipeline.sendgrid.received == []

    # Unmuted by a newer state: texts again.
    await pipeline.publish(topic, conversation_state([], "2026-11-28T11:00:00Z"), "conv-77")
    while (await pipeline.container.store.directory.conversation_state("conv-77")) == state:
        assert time.monotonic() < deadline + WAIT_SECONDS
        await asyncio.sleep(0.05)
    await pipeline.send(send_request("msg-unmuted", ["guardian-lucia"]))
    again = _by_recipient(await pipeline.final_events("msg-unmuted", count=2))
    assert again[("guardian-lucia", "sms")]["status"] == "sent"

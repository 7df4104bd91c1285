"""``notifier demo``: the whole pipeline on the embedded defaults, shown per recipient.

Plays the conversation core and the directory: publishes a small directory and a few send
requests (one of them twice, plus one invalid request) to the real broker, runs the service
in this process, and prints what went out where, in which language, and why; then a
failover and revert, and replies by text and email coming back to the conversation.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from pydantic import SecretStr

from notifier.bootstrap import Container, open_container
from notifier.config import Settings
from notifier.domain.classification import classify_sendgrid
from notifier.domain.lifecycle import ProviderReport
from notifier.domain.model import TERMINAL_STATUSES, Channel, Scope
from notifier.domain.records import DeliveryRecord
from notifier.domain.reply_addresses import reply_address
from notifier.entrypoints.consumer import register_subscribers
from notifier.handlers.contact_points import Actor, reset_contact_point
from notifier.handlers.follow_up import record_provider_report
from notifier.handlers.replies import receive_email_reply, receive_text_reply
from notifier.ports import InboundEmail, InboundText

T = TypeVar("T")

DEMO_DATA = Path("config/demo")
RIVERA = "staff-rivera"


async def run_demo(settings: Settings, *, wait_seconds: float, data: Path = DEMO_DATA) -> int:
    if settings.delivery.reply_address_secret is None:
        # Email replies need signed Reply-To addresses; the demo signs with a throwaway key.
        delivery = settings.delivery.model_copy(
            update={"reply_address_secret": SecretStr(secrets.token_urlsafe(32))}
        )
        settings = settings.model_copy(update={"delivery": delivery})
    directory = orjson.loads((data / "directory.json").read_bytes())
    templates = orjson.loads((data / "requests.json").read_bytes())
    run = datetime.now(UTC).strftime("%H%M%S") + "-" + uuid.uuid4().hex[:4]
    requests = [_request_for_run(template, run) for template in templates]

    container = await open_container(settings)
    register_subscribers(container)
    await container.start()
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers, acks="all")
    await producer.start()
    try:
        kafka = settings.kafka
        for district in directory["districts"]:
            await producer.send_and_wait(
                kafka.districts_topic, _json(district), key=district["id"].encode()
            )
        for recipient in directory["recipients"]:
            await producer.send_and_wait(
                kafka.recipients_topic, _json(recipient), key=recipient["id"].encode()
            )
        await _wait_for_directory(container, directory, wait_seconds)

        started = time.perf_counter()
        for request in requests:
            await producer.send(
                kafka.send_requests_topic, _json(request), key=request["conversation_id"].encode()
            )
        # The same request published twice (as an at-least-once producer may): nobody is told twice.
        await producer.send(
            kafka.send_requests_topic,
            _json(requests[0]),
            key=requests[0]["conversation_id"].encode(),
        )
        bad_key = f"conv-demo-invalid-{run}".encode()
        await producer.send_and_wait(
            kafka.send_requests_topic, b'{"schema": "send-request/1", "body": ', key=bad_key
        )
        records = await _wait_for_deliveries(container, requests, wait_seconds)
        elapsed = time.perf_counter() - started
        dead = await _dead_letters(settings, bad_key, wait_seconds)
        story = await _failover_and_revert(container, producer, requests[1], run, wait_seconds)
        replies = await _replies_come_back(container, requests[1], run, wait_seconds)
        outbox = {row["delivery_id"]: row for row in await container.store.sandbox.sandbox_outbox()}
    finally:
        await producer.stop()
        await container.close()

    _print_report(records, outbox, dead, len(requests) + 2, elapsed)
    _print_story(story, outbox)
    _print_replies(replies)
    return (
        0 if records and dead and all(step.records for step in story) and len(replies) == 2 else 1
    )


@dataclass
class Step:
    caption: str
    records: list[DeliveryRecord]


async def _failover_and_revert(
    container: Container,
    producer: AIOKafkaProducer,
    template: dict[str, Any],
    run: str,
    wait_seconds: float,
) -> list[Step]:
    """Ms. Rivera prefers email. Her inbox fills up: SendGrid reports a bounce, the message
    goes out by text, and so does the next one; support resets her email; the next message
    is an email again."""
    directory, ledger = container.store.directory, container.store.ledger
    kafka = container.settings.kafka
    rivera = (await directory.recipients([RIVERA])).get(RIVERA)
    email = rivera.email if rivera else None
    bounced = next(
        (
            r
            for r in await ledger.deliveries_of_message(template["message_id"])
            if r.recipient_id == RIVERA and r.channel is Channel.EMAIL
        ),
        None,
    )
    if email is None or bounced is None:
        return []

    # What POST /webhooks/sendgrid/events does with a verified "mailbox full" bounce.
    await record_provider_report(
        ProviderReport(
            provider="sendgrid",
            channel=Channel.EMAIL,
            classification=classify_sendgrid(
                "bounce",
                type="bounce",
                bounce_classification="Mailbox Unavailable",
                reason="552 5.2.2 mailbox full",
            ),
            occurred_at=datetime.now(UTC),
            event_key=f"demo-bounce-{run}",
            delivery_id=bounced.delivery_id,
            address=email,
        ),
        container.follow_up,
    )
    steps = [Step("SendGrid reports her mailbox full: the same message goes out by text", [])]
    steps[0].records = await _settled(container, bounced.message_id, RIVERA, 3, wait_seconds)

    while_failing = _request_for_run(
        template | {"message_id": "picnic", "body": "The picnic moves indoors if it rains."}, run
    )
    await _publish(producer, kafka.send_requests_topic, while_failing)
    steps.append(Step("The next message goes straight to SMS while her email is failing", []))
    steps[1].records = await _settled(
        container, while_failing["message_id"], RIVERA, 2, wait_seconds
    )

    # What POST /api/v1/contact-points/email/{address}/reset does for a support token.
    await reset_contact_point(
        Channel.EMAIL,
        email,
        Actor("demo-support", Scope.SUPPORT),
        "She cleared out her inbox",
        None,
        container.follow_up.contact_points,
    )
    after_reset = _request_for_run(
        template | {"message_id": "picnic-reminder", "body": "Reminder: the picnic is at noon."},
        run,
    )
    await _publish(producer, kafka.send_requests_topic, after_reset)
    steps.append(Step("Support resets her email: the preferred channel is used again", []))
    steps[2].records = await _settled(container, after_reset["message_id"], RIVERA, 2, wait_seconds)
    return steps


LUCIA_REPLY = "Sí, allí estaré. ¿A qué hora sale el autobús?"
RIVERA_REPLY = """I can chaperone. I'll bring the first-aid kit.

Thanks,
Ana

On Sat, Nov 28, 2026 at 9:00 AM Springfield Schools <{reply_to}> wrote:
> Hello Ana,
> Reminder: the picnic is at noon.
"""


async def _replies_come_back(
    container: Container, template: dict[str, Any], run: str, wait_seconds: float
) -> list[dict[str, Any]]:
    """Lucía answers the bus-delay text in Spanish; Ms. Rivera answers her last email from
    her mail program, above the quoted notification. Both reach conversation.replies."""
    directory, ledger = container.store.directory, container.store.ledger
    settings = container.settings
    now = datetime.now(UTC)
    # What POST /webhooks/twilio/inbound does with a verified text that is no keyword.
    await receive_text_reply(
        InboundText(message_sid=f"SMdemo{run}", sender="+15555550188", to=None, body=LUCIA_REPLY),
        now,
        container.replies,
    )
    last_email = next(
        (
            r
            for r in await ledger.deliveries_of_message(f"picnic-reminder-{run}")
            if r.recipient_id == RIVERA and r.channel is Channel.EMAIL and r.address
        ),
        None,
    )
    district = await directory.district(template["district_id"])
    secret = settings.delivery.reply_address_secret
    if last_email and last_email.address and district and district.reply_domain and secret:
        # The Reply-To that email carried; what POST /webhooks/sendgrid/inbound does with the
        # answer sent to it.
        reply_to = reply_address(
            last_email.delivery_id, district.reply_domain, secret.get_secret_value().encode()
        )
        await receive_email_reply(
            InboundEmail(
                message_id=f"<demo-{run}@springfield.example>",
                sender=last_email.address,
                reply_addresses=(reply_to,),
                subject="Re: New message from Ms. Rivera",
                text=RIVERA_REPLY.format(reply_to=reply_to),
            ),
            now,
            container.replies,
        )
    return await _read_replies(settings, template["conversation_id"], 2, wait_seconds)


async def _read_replies(
    settings: Settings, conversation_id: str, count: int, wait_seconds: float
) -> list[dict[str, Any]]:
    def in_conversation(record: ConsumerRecord[bytes, bytes]) -> dict[str, Any] | None:
        reply: dict[str, Any] = orjson.loads(record.value) if record.value else {}
        return reply if reply.get("conversation_id") == conversation_id else None

    found = await _read_topic(
        settings, settings.kafka.replies_topic, in_conversation, count, wait_seconds
    )
    # Earlier demo runs replied in the same conversation: show this run's.
    return found[-count:]


async def _read_topic(
    settings: Settings,
    topic: str,
    keep: Callable[[ConsumerRecord[bytes, bytes]], T | None],
    count: int,
    wait_seconds: float,
) -> list[T]:
    """What ``keep`` makes of the topic's records, read from the beginning until ``count``
    were kept (all of the topic is read that arrived by then) or time runs out."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    found: list[T] = []
    try:
        deadline = time.monotonic() + wait_seconds
        while len(found) < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for record in (r for batch in batches.values() for r in batch):
                if (kept := keep(record)) is not None:
                    found.append(kept)
    finally:
        await consumer.stop()
    return found


async def _publish(producer: AIOKafkaProducer, topic: str, request: dict[str, Any]) -> None:
    await producer.send_and_wait(topic, _json(request), key=request["conversation_id"].encode())


async def _settled(
    container: Container, message_id: str, recipient_id: str, count: int, wait_seconds: float
) -> list[DeliveryRecord]:
    deadline = time.monotonic() + wait_seconds
    while True:
        records = [
            r
            for r in await container.store.ledger.deliveries_of_message(message_id)
            if r.recipient_id == recipient_id
        ]
        if sum(r.status in TERMINAL_STATUSES for r in records) >= count:
            return records
        if time.monotonic() > deadline:
            return []
        await asyncio.sleep(0.1)


def _request_for_run(template: dict[str, Any], run: str) -> dict[str, Any]:
    return {
        **template,
        "request_id": str(uuid.uuid4()),
        "message_id": f"{template['message_id']}-{run}",
        "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }


def _json(value: dict[str, Any]) -> bytes:
    return orjson.dumps(value)


async def _wait_for_directory(
    container: Container, directory: dict[str, Any], wait_seconds: float
) -> None:
    wanted = [r["id"] for r in directory["recipients"]]
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        found = await container.store.directory.recipients(wanted)
        if len(found) == len(wanted) and all(
            await asyncio.gather(
                *(container.store.directory.district(d["id"]) for d in directory["districts"])
            )
        ):
            return
        await asyncio.sleep(0.1)
    raise TimeoutError("the demo directory did not reach the store in time")


async def _wait_for_deliveries(
    container: Container, requests: list[dict[str, Any]], wait_seconds: float
) -> list[Any]:
    deadline = time.monotonic() + wait_seconds
    while True:
        records = []
        for request in requests:
            records += await container.store.ledger.deliveries_of_message(request["message_id"])
        expected = sum(_expected_deliveries(request) for request in requests)
        done = [r for r in records if r.status in TERMINAL_STATUSES]
        if len(done) >= expected or time.monotonic() > deadline:
            return records
        await asyncio.sleep(0.1)


def _expected_deliveries(request: dict[str, Any]) -> int:
    # Every recipient but the sender gets an app inbox copy; all but the app-only student an
    # SMS or email as well. The demo directory is fixed, so this is known.
    recipients = {r["id"] for r in request["recipients"]} - {request["sender"]["id"]}
    return sum(1 if r.startswith("student-") else 2 for r in recipients)


async def _dead_letters(
    settings: Settings, key: bytes, wait_seconds: float
) -> list[dict[str, str]]:
    def headers_of_ours(record: ConsumerRecord[bytes, bytes]) -> dict[str, str] | None:
        return {k: v.decode() for k, v in record.headers} if record.key == key else None

    return await _read_topic(
        settings, settings.kafka.dead_letter_topic, headers_of_ours, 1, wait_seconds
    )


def _print_story(story: list[Step], outbox: dict[str, Any]) -> None:
    if not story:
        return
    print()
    print("failover and revert — Ms. Rivera prefers email")
    print("=" * 78)
    for step in story:
        print(f"\n{step.caption}")
        _print_records(step.records, outbox)


def _print_replies(replies: list[dict[str, Any]]) -> None:
    print()
    print("replies — answered by text and by email, published on conversation.replies")
    print("=" * 78)
    for reply in replies:
        authors = ", ".join(reply["author_recipient_ids"])
        print(
            f"\n{authors} by {reply['channel']} (language detected: {reply['language']}) "
            f"to {reply['conversation_id']}:"
        )
        print(f"  {reply['text']}")
        if reply["channel"] == "email":
            print("  (the quoted notification and her signature were cut off)")


def _print_report(
    records: list[Any],
    outbox: dict[str, Any],
    dead: list[dict[str, str]],
    published: int,
    elapsed: float,
) -> None:
    print()
    print("notifier demo — what went out, where, in which language, and why")
    print("=" * 78)
    for message_id in dict.fromkeys(r.message_id for r in records):
        print(f"\nmessage {message_id}")
        _print_records([r for r in records if r.message_id == message_id], outbox)
    print()
    print(f"published {published} requests (one of them twice, one invalid) in {elapsed:.2f} s")
    delivered = sum(1 for r in records if r.status in TERMINAL_STATUSES)
    print(f"deliveries recorded: {delivered}; {delivered / elapsed:.1f} deliveries/s end to end")
    for headers in dead:
        print(
            f"dead-lettered: {headers.get('x-notifier-error')} — {headers.get('x-notifier-detail')}"
        )


def _print_records(records: list[DeliveryRecord], outbox: dict[str, Any]) -> None:
    for record in records:
        why = record.route.value if record.route else "-"
        if record.fallback_from:
            why += f" (instead of {record.fallback_from})"
        status = record.status.value + (f" ({record.reason})" if record.reason else "")
        print(
            f"  {record.recipient_id:<16} {record.channel.value:<5} {status:<24}"
            f" lang={record.language or '-':<3} to={record.address or '-':<30} route={why}"
        )
        sent = outbox.get(record.delivery_id)
        if sent is not None:
            text = sent["subject"] + " | " if sent["subject"] else ""
            text += sent["body"].replace("\n", " / ")
            print(f"  {'':<16} └ {text[:140]}")

"""``notifier demo``: the whole pipeline on the embedded defaults, shown per recipient.

Plays the conversation core and the directory: publishes a small directory and a few send
requests (one of them twice, plus one invalid request) to the real broker, runs the service
in this process, and prints what went out where, in which language, and why.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from notifier.bootstrap import Container, open_container
from notifier.config import Settings
from notifier.domain.model import TERMINAL_STATUSES
from notifier.entrypoints.consumer import register_subscribers

DEMO_DATA = Path("config/demo")


async def run_demo(settings: Settings, *, wait_seconds: float, data: Path = DEMO_DATA) -> int:
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
        outbox = {row["delivery_id"]: row for row in await container.store.sandbox_outbox()}
    finally:
        await producer.stop()
        await container.close()

    _print_report(records, outbox, dead, len(requests) + 2, elapsed)
    return 0 if records and dead else 1


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
        found = await container.store.recipients(wanted)
        if len(found) == len(wanted) and all(
            await asyncio.gather(
                *(container.store.district(d["id"]) for d in directory["districts"])
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
            records += await container.store.deliveries_of_message(request["message_id"])
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
    consumer = AIOKafkaConsumer(
        settings.kafka.dead_letter_topic,
        bootstrap_servers=settings.kafka.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    found: list[dict[str, str]] = []
    try:
        deadline = time.monotonic() + wait_seconds
        while not found and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for record in (r for batch in batches.values() for r in batch):
                if record.key == key:
                    found.append({k: v.decode() for k, v in record.headers})
    finally:
        await consumer.stop()
    return found


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
        for record in (r for r in records if r.message_id == message_id):
            why = record.route.value if record.route else "-"
            if record.fallback_from:
                why += f" (instead of {record.fallback_from})"
            print(
                f"  {record.recipient_id:<16} {record.channel.value:<5} {record.status.value:<9}"
                f" lang={record.language or '-':<3} to={record.address or '-':<30} route={why}"
            )
            sent = outbox.get(record.delivery_id)
            if sent is not None:
                text = sent["subject"] + " | " if sent["subject"] else ""
                text += sent["body"].replace("\n", " / ")
                print(f"  {'':<16} └ {text[:140]}")
    print()
    print(f"published {published} requests (one of them twice, one invalid) in {elapsed:.2f} s")
    delivered = sum(1 for r in records if r.status in TERMINAL_STATUSES)
    print(f"deliveries recorded: {delivered}; {delivered / elapsed:.1f} deliveries/s end to end")
    for headers in dead:
        print(
            f"dead-lettered: {headers.get('x-notifier-error')} — {headers.get('x-notifier-detail')}"
        )

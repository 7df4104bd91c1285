"""What the fault scenarios share: a bounded load (a directory and the send requests naming
it), the real ``notifier run --only consumer`` process on its own topics, group and database
(tests/test_service_process.py's harness), the fake providers, and the verdict read from the
deliveries table, the fakes and the dead-letter topic once the run has settled.

The guarantee every scenario checks, whatever it broke on the way:

- every requested (message, recipient) has an SMS or email delivery past "queued" (sent,
  delivered, failed, bounced, suppressed, skipped…): nothing is **lost**;
- no delivery of any channel is left "queued";
- a provider accepted one delivery more than once only inside the unknown-outcome window: a
  delivery whose ``attempts`` is above 1 (an attempt died mid-send and it was sent again),
  and never more often than its attempts; every other duplicate is a failure;
- nothing was dead-lettered (every request of the load is valid);
- no service process died by itself.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import RecordMetadata
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from notifier.adapters import tables
from notifier.adapters.sql.database import create_engine
from tests.conftest import kafka_bootstrap, postgres_url
from tests.databases import Backend
from tests.fakes.sendgrid_server import AcceptedMail, FakeSendGrid
from tests.fakes.twilio_server import FakeTwilio
from tests.test_pipeline_kafka import DISTRICT, recipient, send_request
from tests.test_service_process import EXIT_SECONDS, Harness, ServiceProcess, _service_env

KeyT = TypeVar("KeyT")

REPO = Path(__file__).resolve().parents[2]

PUBLISH_SECONDS = 120.0
"""Longest a record may take to be published (the broker may be restarting)."""
PROGRESS_SECONDS = 120.0
"""Longest wait for the fake providers to have taken a given number of sends."""
SETTLE_SECONDS = 180.0
"""Longest wait for the consumer to catch up and every delivery to settle."""

PROVIDER_TIMEOUT_SECONDS = 2.0
"""The service's Twilio and SendGrid timeout in these runs; a hang lasts longer."""

SERVICE_ENV = {
    # The per-request INFO lines cost a fifth of the service's CPU on this load; warnings
    # and errors (an unknown outcome sent again, a failing batch) are still logged.
    "NOTIFIER_LOG_LEVEL": "WARNING",
    "NOTIFIER_TWILIO_TIMEOUT_SECONDS": str(PROVIDER_TIMEOUT_SECONDS),
    "NOTIFIER_SENDGRID_TIMEOUT_SECONDS": str(PROVIDER_TIMEOUT_SECONDS),
    "NOTIFIER_DELIVERY_RETRY_ATTEMPTS": "4",
    "NOTIFIER_DELIVERY_RETRY_MAX_SECONDS": "10",
}

_NOTICE = re.compile(r"notice (\d+)\b")
_FIRST_NAMES = ("Avery", "Blake", "Carmen", "Dennis", "Elena", "Farid", "Grace", "Hugo")


@dataclass(frozen=True, slots=True)
class Load:
    """A bounded load: ``recipients`` people, ``requests`` send requests of ``per_request``
    recipients each (one SMS or email delivery per person and request, plus the inbox).

    People by index modulo 5: 0 and 1 guardians with a phone only (indexes 10k and 10k+1
    share one phone, a family), 2 guardians with phone and email (texted, email as the
    alternate), 3 staff with email only, 4 staff with email and phone (emailed, texts as the
    alternate). Shared phones belong only to phone-only guardians, so one phone gets at most
    one text per message unless a send is repeated."""

    recipients: int = 200
    requests: int = 100
    per_request: int = 20
    seed: int = 1

    def district(self) -> dict[str, Any]:
        return DISTRICT | {"max_recipients": max(self.per_request, DISTRICT["max_recipients"])}

    def directory(self) -> list[dict[str, Any]]:
        return [self._person(index) for index in range(self.recipients)]

    def send_requests(self) -> list[dict[str, Any]]:
        chooser = random.Random(self.seed)
        people = [profile["id"] for profile in self.directory()]
        return [
            send_request(
                message_id(number),
                chooser.sample(people, self.per_request),
                # A body per message, so that a text names its message at the fake Twilio.
                body=f"notice {number}.",
                translations={},
                conversation_id=f"conv-{number % 24}",
            )
            for number in range(self.requests)
        ]

    def expected_sends(self) -> int:
        """Texts and emails the load asks the providers for when nothing goes wrong."""
        profiles = {profile["id"]: profile for profile in self.directory()}
        sends = 0
        for request in self.send_requests():
            people = [profiles[r["id"]] for r in request["recipients"]]
            phones = {p["phone"] for p in people if p["role"] == "guardian"}
            sends += len(phones) + sum(1 for p in people if p["role"] == "staff")
        return sends

    def _person(self, index: int) -> dict[str, Any]:
        kind = index % 5
        first_name = _FIRST_NAMES[index % len(_FIRST_NAMES)]
        # Indexes 10k and 10k+1 are a family on one phone.
        phone_of = index - 1 if kind == 1 and index % 10 == 1 else index
        phone = f"+1555010{phone_of:04d}"
        email = f"person-{index:04d}@example.org"
        if kind in (0, 1):
            return recipient(f"guardian-{index:04d}", first_name, "guardian", phone=phone)
        if kind == 2:
            return recipient(
                f"guardian-{index:04d}", first_name, "guardian", phone=phone, email=email
            )
        if kind == 3:
            return recipient(f"staff-{index:04d}", first_name, "staff", email=email)
        return recipient(f"staff-{index:04d}", first_name, "staff", email=email, phone=phone)


def message_id(number: int) -> str:
    return f"notice-{number:04d}"


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    delivery_id: str
    message_id: str
    recipient_id: str
    channel: str
    address: str | None
    status: str
    reason: str | None
    attempts: int


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a settled run came to."""

    deliveries: int
    """SMS and email deliveries recorded."""
    statuses: dict[str, int]
    """SMS and email deliveries by status (and reason, where there is one)."""
    lost: list[str]
    queued: list[str]
    duplicates_in_window: int
    """Extra provider sends of deliveries with attempts > 1 (allowed, reported)."""
    sms_duplicates_in_window: int
    """Those that were texts: Twilio is asked before a text is sent again, so these are
    few (issue 14: at most one a kill on average); email has no such lookup."""
    duplicates_outside_window: list[str]
    dead_letters: list[str]
    died: list[str]
    """Service processes that exited without being killed or stopped by the test."""

    def failures(self) -> list[str]:
        named = [
            ("lost (message, recipient)", self.lost),
            ("deliveries left queued", self.queued),
            ("duplicates outside the unknown-outcome window", self.duplicates_outside_window),
            ("dead letters", self.dead_letters),
            ("service processes that died by themselves", self.died),
        ]
        return [
            f"{len(items)} {name}: " + "; ".join(items[:15]) + (" …" if len(items) > 15 else "")
            for name, items in named
            if items
        ]


def judge(
    requests: Sequence[dict[str, Any]],
    rows: Sequence[DeliveryRow],
    texts: Sequence[dict[str, Any]],
    mails: Sequence[AcceptedMail],
    dead_letters: list[str],
    died: list[str],
) -> Verdict:
    """The verdict on the deliveries table, the texts Twilio created (Message resources)
    and the mails SendGrid accepted."""
    outbound = [row for row in rows if row.channel in ("sms", "email")]
    lost, queued = unsettled(requests, rows)
    by_id = {row.delivery_id: row for row in rows}
    in_window, outside = _duplicates(
        Counter(mail.body["custom_args"].get("notifier_delivery_id") for mail in mails),
        lambda delivery_id: [by_id[delivery_id]] if delivery_id in by_id else [],
        "email",
    )
    sms_rows: dict[tuple[str | None, str | None], list[DeliveryRow]] = {}
    for row in outbound:
        if row.channel == "sms":
            sms_rows.setdefault((row.address, row.message_id), []).append(row)
    text_in_window, text_outside = _duplicates(
        Counter((text["to"], _message_of(text["body"])) for text in texts),
        lambda key: sms_rows.get(key, []),
        "sms",
    )
    return Verdict(
        deliveries=len(outbound),
        statuses=dict(
            Counter(f"{row.status}/{row.reason}" if row.reason else row.status for row in outbound)
        ),
        lost=lost,
        queued=queued,
        duplicates_in_window=in_window + text_in_window,
        sms_duplicates_in_window=text_in_window,
        duplicates_outside_window=outside + text_outside,
        dead_letters=dead_letters,
        died=died,
    )


def unsettled(
    requests: Sequence[dict[str, Any]], rows: Sequence[DeliveryRow]
) -> tuple[list[str], list[str]]:
    """(the lost (message, recipient) pairs, the deliveries still queued), described."""
    settled = {
        (row.message_id, row.recipient_id)
        for row in rows
        if row.channel in ("sms", "email") and row.status != "queued"
    }
    asked = [
        (request["message_id"], r["id"])
        for request in requests
        for r in request["recipients"]
        if r["id"] != request["sender"]["id"]
    ]
    lost = [f"{m}/{r}: {_rows_of(rows, m, r)}" for m, r in asked if (m, r) not in settled]
    queued = [
        f"{row.message_id}/{row.recipient_id}/{row.channel} ({row.delivery_id})"
        for row in rows
        if row.status == "queued"
    ]
    return lost, queued


def _duplicates(
    sends: Counter[KeyT], deliveries_of: Callable[[KeyT], list[DeliveryRow]], channel: str
) -> tuple[int, list[str]]:
    """(extra sends inside the window, descriptions of those outside it). A key's sends are
    allowed up to the highest ``attempts`` among the deliveries they stand for: one text to
    a shared phone stands for each person on it."""
    in_window = 0
    outside: list[str] = []
    for key, count in sends.items():
        rows = deliveries_of(key)
        allowed = max((row.attempts for row in rows), default=0)
        if count > allowed:
            outside.append(f"{channel} {key} sent {count}x, deliveries {rows or 'none'}")
        elif count > 1:
            in_window += count - 1
    return in_window, outside


def _message_of(body: str) -> str | None:
    found = _NOTICE.search(body)
    return message_id(int(found[1])) if found else None


def _rows_of(rows: Iterable[DeliveryRow], message: str, recipient_id: str) -> str:
    mine = [
        f"{row.channel}={row.status}({row.reason})x{row.attempts}"
        for row in rows
        if row.message_id == message and row.recipient_id == recipient_id
    ]
    return ", ".join(mine) or "no delivery at all"


@dataclass
class FaultRun(Harness):
    """One scenario's service, fakes, producer and database, and the load it runs."""

    load: Load = field(default_factory=Load)
    engine: AsyncEngine | None = None
    kills: int = 0
    stopped: set[int] = field(default_factory=set)
    """Indexes in ``processes`` of those the test killed or stopped itself."""

    @property
    def service(self) -> ServiceProcess:
        return self.processes[-1]

    async def start_consumer(self) -> ServiceProcess:
        return await self.start_service("--only", "consumer")

    async def kill_service(self) -> None:
        """SIGKILL the running service (it must still be running: it may not die alone)."""
        service = self.service
        assert not service.exited(), f"notifier died by itself\n{self.logs()}"
        self.stopped.add(len(self.processes) - 1)
        await service.kill()
        self.kills += 1

    async def stop_service(self) -> int | None:
        """SIGTERM the running service; its exit code (None: it did not exit in time)."""
        service = self.service
        assert service.process is not None
        if service.exited():
            return service.process.returncode
        self.stopped.add(len(self.processes) - 1)
        service.process.terminate()
        return await service.wait_exit(EXIT_SECONDS)

    def logs(self) -> str:
        """The tails of the last service processes' logs, for a failure message."""
        return "\n".join(service.tail() for service in self.processes[-3:])

    async def publish(self, topic: str, value: dict[str, Any], key: str) -> RecordMetadata:
        """Publish, trying again while the broker is away (a retry may publish a record
        twice, which the service must take in its stride anyway)."""
        deadline = time.monotonic() + PUBLISH_SECONDS
        while True:
            try:
                send = self.producer.send_and_wait(topic, orjson.dumps(value), key=key.encode())
                return await asyncio.wait_for(send, 15.0)
            except (KafkaError, TimeoutError) as error:
                if time.monotonic() > deadline:
                    raise AssertionError(f"could not publish to {topic}: {error!r}") from error
                await asyncio.sleep(0.5)

    async def start_with_directory(self) -> None:
        """Start the consumer and give it the load's directory."""
        await self.start_consumer()
        await self.service.wait_ready()
        await self.apply_directory()

    async def apply_directory(self) -> None:
        """Publish the district and the people, and wait until the service has them all."""
        district = self.load.district()
        await self.publish(self.topic("DISTRICTS"), district, district["id"])
        directory = self.load.directory()
        for profile in directory:
            await self.publish(self.topic("RECIPIENTS"), profile, profile["id"])
        labels = {"outcome": "applied"}
        await self.service.wait_for_metric(
            "notifier_directory_events_total", len(directory), kind="recipient", **labels
        )

    async def publish_requests(self, requests: Sequence[dict[str, Any]]) -> None:
        for request in requests:
            await self.send(request)

    def sent(self) -> int:
        """Texts and emails the fake providers have accepted so far."""
        return len(self.twilio.messages) + len(self.sendgrid.accepted)

    async def wait_until_sent(self, count: int) -> None:
        deadline = time.monotonic() + PROGRESS_SECONDS
        while self.sent() < count:
            assert not self.service.exited(), f"notifier died by itself\n{self.logs()}"
            assert time.monotonic() < deadline, (
                f"only {self.sent()} of {count} sends reached the fakes\n{self.logs()}"
            )
            await asyncio.sleep(0.02)

    async def settle(self) -> Verdict:
        """Wait until the consumer has committed every send request and no delivery is
        queued or missing (or SETTLE_SECONDS passed), then judge the run."""
        requests = self.load.send_requests()
        deadline = time.monotonic() + SETTLE_SECONDS
        while time.monotonic() < deadline:
            assert not self.service.exited(), f"notifier died by itself\n{self.logs()}"
            if await self._caught_up():
                lost, queued = unsettled(requests, await self.deliveries())
                if not lost and not queued:
                    break
            await asyncio.sleep(1.0)
        return await self._judge(requests)

    async def _judge(self, requests: Sequence[dict[str, Any]]) -> Verdict:
        died = [
            f"process {index + 1} exited with {service.process.returncode}"
            for index, service in enumerate(self.processes)
            if index not in self.stopped
            and service.process is not None
            and service.process.returncode is not None
        ]
        return judge(
            requests,
            await self.deliveries(),
            self.twilio.messages,
            self.sendgrid.accepted,
            await self.dead_letters(),
            died,
        )

    async def deliveries(self) -> list[DeliveryRow]:
        assert self.engine is not None
        d = tables.deliveries.c
        query = sa.select(
            d.delivery_id,
            d.message_id,
            d.recipient_id,
            d.channel,
            d.address,
            d.status,
            d.reason,
            d.attempts,
        )
        async with self.engine.connect() as connection:
            result = await connection.execute(query)
            return [DeliveryRow(**row._mapping) for row in result]

    async def _caught_up(self) -> bool:
        """Whether the group has committed every send request published so far."""
        try:
            ends = await self._end_offsets(self.topic("SEND_REQUESTS"))
            committed = await self.committed_offsets()
        except (KafkaError, OSError, TimeoutError):
            return False  # the broker is away: not caught up yet
        return all(committed.get(p, -1) >= end for p, end in ends.items() if end > 0)

    async def _end_offsets(self, topic: str) -> dict[int, int]:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap())
        await admin.start()
        try:
            [described] = await admin.describe_topics([topic])
        finally:
            await admin.close()
        partitions = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
        consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap())
        await consumer.start()
        try:
            ends = await consumer.end_offsets(partitions)
        finally:
            await consumer.stop()
        return {tp.partition: offset for tp, offset in ends.items()}

    async def dead_letters(self) -> list[str]:
        """Every record on the dead-letter topic, described by its headers."""
        topic = self.topic("DEAD_LETTER")
        ends = await self._end_offsets(topic)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka_bootstrap(),
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        letters: list[str] = []
        try:
            partitions = [TopicPartition(topic, p) for p in ends]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            for partition in partitions:
                while await consumer.position(partition) < ends[partition.partition]:
                    for record in await consumer.getmany(partition, timeout_ms=1000):
                        headers = {k: v.decode() for k, v in record.headers}
                        letters.append(f"{record.key!r} {headers}")
        finally:
            await consumer.stop()
        return letters


@asynccontextmanager
async def fault_run(
    tmp_path: Path,
    *,
    load: Load,
    backend: Backend = "sqlite",
) -> AsyncIterator[FaultRun]:
    """A FaultRun with fresh topics, group, database and fake providers (not started)."""
    run = uuid.uuid4().hex[:10]
    async with _database(backend, tmp_path, run) as database_url:
        with FakeTwilio() as twilio, FakeSendGrid() as sendgrid:
            service_env = _service_env(tmp_path, run, twilio, sendgrid) | SERVICE_ENV
            service_env["NOTIFIER_DATABASE_URL"] = database_url
            producer = AIOKafkaProducer(
                bootstrap_servers=kafka_bootstrap(), acks="all", enable_idempotence=True
            )
            await producer.start()
            engine = create_engine(database_url, pool_size=2)
            faulty = FaultRun(
                tmp_path, service_env, twilio, sendgrid, producer, load=load, engine=engine
            )
            try:
                yield faulty
            finally:
                try:
                    for service in faulty.processes:
                        await service.kill()
                finally:
                    await producer.stop()
                    await engine.dispose()


@asynccontextmanager
async def _database(backend: Backend, tmp_path: Path, run: str) -> AsyncIterator[str]:
    """The URL of a fresh database: a SQLite file, or a database of its own on the test
    PostgreSQL server (dropped afterwards). Not tests/api_world.py's: its engine keeps a
    pooled connection from CREATE to DROP, which a database restart kills."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/notifier.db"
        return
    url = postgres_url()
    if url is None:
        pytest.fail("NOTIFIER_TEST_POSTGRES_URL is not set (make test starts PostgreSQL)")
    name = f"notifier_faults_{run}"
    await _on_server(url, f'CREATE DATABASE "{name}"')
    try:
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        await _on_server(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _on_server(url: str, statement: str) -> None:
    """Run a statement that cannot run in a transaction (CREATE DATABASE)."""
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.exec_driver_sql(statement)
    finally:
        await engine.dispose()


async def local_service(script: str, action: str, *, external: str) -> str:
    """Run ``scripts/<script> <action>`` on the local broker or database and return what it
    printed. ``external`` is the variable that makes the script leave the service alone
    (meant for an external one); it is dropped, so the caller must have checked that the
    local service is the one the tests use."""
    env = {name: value for name, value in os.environ.items() if name != external}
    script_process = await asyncio.create_subprocess_exec(
        str(REPO / "scripts" / script),
        action,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output = (await script_process.communicate())[0].decode(errors="replace")
    assert script_process.returncode == 0, f"scripts/{script} {action} failed:\n{output}"
    return output


@dataclass
class ScenarioRow:
    """One line of the session's fault summary: a scenario, over all its runs."""

    scenario: str
    runs: int = 0
    kills: int = 0
    deliveries: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    lost: int = 0
    queued: int = 0
    duplicates_in_window: int = 0
    sms_duplicates_in_window: int = 0
    duplicates_outside_window: int = 0
    dead_lettered: int = 0
    died: int = 0
    notes: list[str] = field(default_factory=list)
    problems: int = 0
    bad_input: bool = False
    """A fuzz row: its input is meant to be dead-lettered (every bad message, exactly)."""

    @property
    def result(self) -> str:
        bad = self.lost or self.queued or self.duplicates_outside_window or self.problems
        unexpected_dead_letters = self.dead_lettered and not self.bad_input
        return "FAIL" if bad or unexpected_dead_letters or self.died else "ok"


class FaultSummary:
    """What each scenario came to, for the table printed at the end of the session."""

    HEADER = (
        "scenario",
        "runs",
        "kills",
        "deliveries",
        "outcomes",
        "lost",
        "queued left",
        "duplicates (inside window: all, SMS)",
        "duplicates (outside window)",
        "dead-lettered",
        "died",
        "result",
        "notes",
    )

    def __init__(self) -> None:
        self.rows: dict[str, ScenarioRow] = {}

    def record(self, scenario: str, run: FaultRun, verdict: Verdict, note: str = "") -> None:
        row = self.rows.setdefault(scenario, ScenarioRow(scenario))
        row.runs += 1
        row.kills += run.kills
        row.deliveries += verdict.deliveries
        row.statuses.update(verdict.statuses)
        row.lost += len(verdict.lost)
        row.queued += len(verdict.queued)
        row.duplicates_in_window += verdict.duplicates_in_window
        row.sms_duplicates_in_window += verdict.sms_duplicates_in_window
        row.duplicates_outside_window += len(verdict.duplicates_outside_window)
        row.dead_lettered += len(verdict.dead_letters)
        row.died += len(verdict.died)
        if note:
            row.notes.append(note)

    def record_fuzz(
        self,
        scenario: str,
        *,
        dead_lettered: int,
        good_deliveries: int,
        lost: int,
        duplicates: int,
        problems: int,
        note: str,
    ) -> None:
        """One fuzz run: what was dead-lettered, and the good requests' deliveries."""
        row = self.rows.setdefault(scenario, ScenarioRow(scenario, bad_input=True))
        row.runs += 1
        row.deliveries += good_deliveries
        row.lost += lost
        row.duplicates_outside_window += duplicates
        row.dead_lettered += dead_lettered
        row.problems += problems
        row.notes.append(note)

    def markdown(self) -> str:
        lines = [
            "| " + " | ".join(self.HEADER) + " |",
            "|" + "|".join(" --- " for _ in self.HEADER) + "|",
        ]
        for row in self.rows.values():
            cells = (
                row.scenario,
                row.runs,
                row.kills,
                row.deliveries,
                ", ".join(f"{status} {n}" for status, n in row.statuses.most_common()),
                row.lost,
                row.queued,
                f"{row.duplicates_in_window}, {row.sms_duplicates_in_window}",
                row.duplicates_outside_window,
                row.dead_lettered,
                row.died,
                row.result,
                "; ".join(row.notes),
            )
            lines.append("| " + " | ".join(str(cell) for cell in cells) + " |")
        return "\n".join(lines)

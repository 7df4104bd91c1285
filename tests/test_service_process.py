"""The real ``notifier run`` command as a subprocess, configured only by its environment.

Each test starts the service in its own temporary directory (so the repository's
config/notifier.yaml is not read), with its own topics, consumer group, SQLite file and HTTP
port, and fake Twilio and SendGrid servers in the test process. It is driven through Kafka
and probed through its HTTP ops endpoints and its exit code, the way an orchestrator sees it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import RecordMetadata
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import TEST_TOPIC_PREFIX, kafka_bootstrap
from tests.fakes.sendgrid_server import FakeSendGrid
from tests.fakes.twilio_server import FakeTwilio
from tests.test_pipeline_kafka import DISTRICT, recipient, send_request

pytestmark = pytest.mark.kafka

PARTITIONS = 3
START_SECONDS = 30.0
WAIT_SECONDS = 30.0
GRACEFUL_TIMEOUT_SECONDS = 10
# uvicorn gives open HTTP requests 5 s, then the consumer drains within the graceful timeout.
EXIT_SECONDS = 20.0
KILL_SECONDS = 10.0
PHONE = "+15555550123"
DENNIS = recipient("guardian-dennis", "Dennis", "guardian", phone=PHONE)
DENNIS_TEXT = "For Dennis: Ms. Rivera: Field trip forms are due Friday."


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _open_log(path: Path) -> IO[bytes]:
    return path.open("ab")


def _tail(path: Path, lines: int = 60) -> str:
    if not path.exists():
        return "(no output)"
    text = path.read_text(errors="replace").splitlines()[-lines:]
    return "\n".join(text) or "(no output)"


def _samples(metrics: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
    }


def _sample(metrics: str, name: str, **labels: str) -> float | None:
    return _samples(metrics).get((name, frozenset(labels.items())))


@dataclass
class ServiceProcess:
    """One ``notifier run`` process; its stdout and stderr go to ``log_path``."""

    env: dict[str, str]
    cwd: Path
    log_path: Path
    base_url: str
    process: asyncio.subprocess.Process | None = None
    _log: IO[bytes] | None = None

    async def start(self, *args: str) -> None:
        self._log = _open_log(self.log_path)
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "notifier",
            "run",
            *args,
            cwd=self.cwd,
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            # Its own session: a Ctrl-C meant for pytest does not reach it half-way.
            start_new_session=True,
        )

    def tail(self) -> str:
        return f"--- notifier output ({self.log_path}) ---\n{_tail(self.log_path)}"

    def exited(self) -> bool:
        return self.process is not None and self.process.returncode is not None

    async def get(self, path: str) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.base_url, timeout=5.0) as client:
            return await client.get(path)

    async def wait_until(
        self, path: str, accept: Callable[[httpx.Response], bool], what: str
    ) -> httpx.Response:
        """Poll GET ``path`` until ``accept``; fail early if the process dies."""
        deadline = time.monotonic() + START_SECONDS
        last: str = "no answer yet"
        while True:
            assert not self.exited(), f"notifier exited while waiting for {what}\n{self.tail()}"
            try:
                response = await self.get(path)
            except httpx.TransportError as error:
                last = repr(error)
            else:
                if accept(response):
                    return response
                last = f"{response.status_code} {response.text[:2000]}"
            assert time.monotonic() < deadline, (
                f"timed out waiting for {what}; last answer: {last}\n{self.tail()}"
            )
            await asyncio.sleep(0.1)

    async def wait_healthy(self) -> None:
        await self.wait_until("/healthz", lambda r: r.status_code == 200, "/healthz")

    async def wait_ready(self) -> None:
        await self.wait_until("/readyz", lambda r: r.status_code == 200, "/readyz")

    async def wait_for_metric(self, name: str, value: float, **labels: str) -> str:
        """The /metrics text once the sample ``name{labels}`` has reached ``value``."""
        response = await self.wait_until(
            "/metrics",
            lambda r: (_sample(r.text, name, **labels) or 0.0) >= value,
            f"{name}{labels} >= {value}",
        )
        return response.text

    async def wait_exit(self, seconds: float) -> int | None:
        assert self.process is not None
        try:
            return await asyncio.wait_for(self.process.wait(), seconds)
        except TimeoutError:
            return None

    async def kill(self) -> None:
        """Make sure the process is gone (SIGKILL if it still runs); never an orphan."""
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await asyncio.wait_for(self.process.wait(), KILL_SECONDS)
        if self._log is not None:
            self._log.close()
            self._log = None


@dataclass
class Harness:
    tmp_path: Path
    env: dict[str, str]
    twilio: FakeTwilio
    sendgrid: FakeSendGrid
    producer: AIOKafkaProducer
    processes: list[ServiceProcess] = field(default_factory=list)

    def topic(self, name: str) -> str:
        return self.env[f"NOTIFIER_KAFKA_{name}_TOPIC"]

    @property
    def group_id(self) -> str:
        return self.env["NOTIFIER_KAFKA_GROUP_ID"]

    async def start_service(self, *args: str) -> ServiceProcess:
        number = len(self.processes) + 1
        service = ServiceProcess(
            env=self.env,
            cwd=self.tmp_path,
            log_path=self.tmp_path / f"notifier-{number}.log",
            base_url=f"http://127.0.0.1:{self.env['NOTIFIER_HTTP_PORT']}",
        )
        self.processes.append(service)
        await service.start(*args)
        await service.wait_healthy()
        return service

    async def publish(self, topic: str, value: dict[str, Any], key: str) -> RecordMetadata:
        return await self.producer.send_and_wait(topic, orjson.dumps(value), key=key.encode())

    async def publish_directory(self) -> None:
        await self.publish(self.topic("DISTRICTS"), DISTRICT, str(DISTRICT["id"]))
        await self.publish(self.topic("RECIPIENTS"), DENNIS, DENNIS["id"])

    async def load_directory(self, service: ServiceProcess) -> None:
        await self.publish_directory()
        # The request must not overtake the profiles it names (they are on other topics).
        labels = {"outcome": "applied"}
        await service.wait_for_metric(
            "notifier_directory_events_total", 1, kind="district", **labels
        )
        await service.wait_for_metric(
            "notifier_directory_events_total", 1, kind="recipient", **labels
        )

    async def send(self, request: dict[str, Any]) -> RecordMetadata:
        return await self.publish(self.topic("SEND_REQUESTS"), request, request["conversation_id"])

    async def events(self, done: Callable[[list[dict[str, Any]]], bool]) -> list[dict[str, Any]]:
        """The delivery events topic from its beginning, read until ``done`` (or timeout)."""
        topic = self.topic("DELIVERY_EVENTS")
        consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka_bootstrap(),
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        events: list[dict[str, Any]] = []
        try:
            consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
            deadline = time.monotonic() + WAIT_SECONDS
            while not done(events) and time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=200)
                for batch in batches.values():
                    events.extend(orjson.loads(r.value) for r in batch if r.value is not None)
        finally:
            await consumer.stop()
        return events

    async def committed_offsets(self) -> dict[int, int]:
        """The consumer group's committed offset on each partition of the send requests."""
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap())
        await admin.start()
        try:
            offsets = await admin.list_consumer_group_offsets(self.group_id)
        finally:
            await admin.close()
        topic = self.topic("SEND_REQUESTS")
        return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}


def _service_env(
    tmp_path: Path, run: str, twilio: FakeTwilio, sendgrid: FakeSendGrid
) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("NOTIFIER_")}
    prefix = f"{TEST_TOPIC_PREFIX}{run}"
    return env | {
        "PYTHONUNBUFFERED": "1",
        # Neither the repository's config file nor a mounted secrets directory may leak in.
        "NOTIFIER_CONFIG_FILE": str(tmp_path / "absent-notifier.yaml"),
        "NOTIFIER_SECRETS_DIR": str(tmp_path / "absent-secrets"),
        "NOTIFIER_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap(),
        "NOTIFIER_KAFKA_GROUP_ID": f"notifier-process-test-{run}",
        "NOTIFIER_KAFKA_SEND_REQUESTS_TOPIC": f"{prefix}.conversation.send-requests",
        "NOTIFIER_KAFKA_RECIPIENTS_TOPIC": f"{prefix}.directory.recipients",
        "NOTIFIER_KAFKA_DISTRICTS_TOPIC": f"{prefix}.directory.districts",
        "NOTIFIER_KAFKA_CONVERSATION_STATE_TOPIC": f"{prefix}.conversation.state",
        "NOTIFIER_KAFKA_REPLIES_TOPIC": f"{prefix}.conversation.replies",
        "NOTIFIER_KAFKA_DELIVERY_EVENTS_TOPIC": f"{prefix}.notifier.delivery-events",
        "NOTIFIER_KAFKA_DEAD_LETTER_TOPIC": f"{prefix}.notifier.dead-letter",
        "NOTIFIER_KAFKA_PARTITIONS": str(PARTITIONS),
        "NOTIFIER_KAFKA_BATCH_TIMEOUT_MS": "20",
        "NOTIFIER_KAFKA_GRACEFUL_TIMEOUT_SECONDS": str(GRACEFUL_TIMEOUT_SECONDS),
        "NOTIFIER_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/n.db",
        "NOTIFIER_HTTP_HOST": "127.0.0.1",
        "NOTIFIER_HTTP_PORT": str(_free_port()),
        "NOTIFIER_TWILIO_ACCOUNT_SID": twilio.account_sid,
        "NOTIFIER_TWILIO_AUTH_TOKEN": twilio.auth_token,
        "NOTIFIER_TWILIO_API_BASE_URL": twilio.base_url,
        "NOTIFIER_SENDGRID_API_KEY": sendgrid.api_key,
        "NOTIFIER_SENDGRID_API_BASE_URL": sendgrid.base_url,
    }


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    run = uuid.uuid4().hex[:10]
    with FakeTwilio() as twilio, FakeSendGrid() as sendgrid:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap(), acks="all")
        await producer.start()
        harness = Harness(
            tmp_path, _service_env(tmp_path, run, twilio, sendgrid), twilio, sendgrid, producer
        )
        try:
            yield harness
        finally:
            try:
                for service in harness.processes:
                    await service.kill()
            finally:
                await producer.stop()


async def _within(seconds: float, condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + seconds
    while True:
        if condition():
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)


async def test_ops_endpoints_report_health_readiness_and_metrics(harness: Harness) -> None:
    service = await harness.start_service()

    health = await service.get("/healthz")
    assert (health.status_code, health.json()) == (200, {"status": "ok"}), service.tail()
    ready = await service.get("/readyz")
    assert ready.status_code == 200, f"{ready.text}\n{service.tail()}"
    assert ready.json()["checks"] == {"database": "ok", "broker": "ok"}, service.tail()

    await harness.load_directory(service)
    await harness.send(send_request("msg-metrics", ["guardian-dennis"]))
    assert await _within(WAIT_SECONDS, lambda: len(harness.twilio.received) >= 1), (
        f"the SMS never reached the fake Twilio\n{service.tail()}"
    )
    metrics = await service.wait_for_metric("notifier_send_requests_total", 1, outcome="processed")

    lines = metrics.splitlines()
    assert 'notifier_send_requests_total{outcome="processed"} 1.0' in lines, metrics
    sms_sent = _sample(metrics, "notifier_deliveries_total", channel="sms", status="sent")
    assert sms_sent is not None, metrics
    assert sms_sent >= 1, metrics
    assert [r.form["Body"] for r in harness.twilio.received] == [DENNIS_TEXT]


async def test_sigterm_finishes_in_flight_work_and_commits_before_exiting(
    harness: Harness,
) -> None:
    service = await harness.start_service()
    await service.wait_ready()
    await harness.load_directory(service)
    harness.twilio.delay_seconds = 2.0
    published = await harness.send(send_request("msg-in-flight", ["guardian-dennis"]))

    # In flight: the fake has the request and is holding its answer back.
    assert await _within(WAIT_SECONDS, lambda: len(harness.twilio.received) == 1), (
        f"the SMS never reached the fake Twilio\n{service.tail()}"
    )
    assert not harness.twilio.messages, "the fake answered before the test could stop notifier"
    assert service.process is not None
    service.process.send_signal(signal.SIGTERM)
    stopping_since = time.monotonic()

    code = await service.wait_exit(EXIT_SECONDS)
    assert code is not None, f"still running {EXIT_SECONDS:.0f} s after SIGTERM\n{service.tail()}"
    assert code == 0, f"exit code {code} after SIGTERM\n{service.tail()}"
    assert time.monotonic() - stopping_since >= 1.0, "it did not wait for the in-flight SMS"
    assert len(harness.twilio.messages) == 1, "the in-flight SMS was not answered"

    def delivered(events: list[dict[str, Any]]) -> bool:
        return any(
            e["message_id"] == "msg-in-flight" and e["channel"] == "sms" and e["status"] == "sent"
            for e in events
        )

    events = await harness.events(delivered)
    assert delivered(events), f"no 'sent' event for the SMS: {events}\n{service.tail()}"

    committed = await harness.committed_offsets()
    assert committed.get(published.partition, -1) > published.offset, (
        f"request at partition {published.partition} offset {published.offset} is not committed "
        f"(committed: {committed}); a restart would deliver it again\n{service.tail()}"
    )

    # A restart resumes after the request. A second request on the same key (so the same
    # partition, behind the first) shows the new process is consuming; had the first been
    # redelivered it would have been processed before it, as a duplicate.
    harness.twilio.delay_seconds = 0.0
    restarted = await harness.start_service()
    await restarted.wait_ready()
    await harness.send(send_request("msg-after-restart", ["guardian-dennis"], body="Bus at 3."))
    metrics = await restarted.wait_for_metric(
        "notifier_send_requests_total", 1, outcome="processed"
    )
    assert not _sample(metrics, "notifier_send_requests_total", outcome="duplicate"), (
        f"the request finished before SIGTERM was taken again after the restart\n{metrics}"
    )
    assert [r.form["Body"] for r in harness.twilio.received] == [
        DENNIS_TEXT,
        "For Dennis: Ms. Rivera: Bus at 3.",
    ], restarted.tail()


async def test_only_http_runs_no_consumer(harness: Harness) -> None:
    service = await harness.start_service("--only", "http")
    await service.wait_ready()  # the topics exist: it created them at start
    await harness.publish_directory()
    await harness.send(send_request("msg-http-only", ["guardian-dennis"]))

    assert not await _within(3.0, lambda: len(harness.twilio.received) > 0), (
        f"an HTTP-only process delivered a send request\n{service.tail()}"
    )
    assert (await service.get("/healthz")).status_code == 200, service.tail()
    metrics = (await service.get("/metrics")).text
    assert (
        _sample(metrics, "notifier_directory_events_total", kind="recipient", outcome="applied")
        is None
    ), metrics

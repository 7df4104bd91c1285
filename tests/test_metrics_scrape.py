"""/metrics after a real run: the values ops' dashboards and alerts read are there and true,
and the exposition passes Prometheus' own linter (promtool, Debian's prometheus package)."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from notifier.metrics import PrometheusMetrics
from tests.story import MARIA_EMAIL, Story, running_story
from tests.test_failover_story import MARIA
from tests.test_pipeline_kafka import WAIT_SECONDS, send_request
from tests.test_service_process import _samples as samples

pytestmark = pytest.mark.kafka


@pytest.fixture
async def story(tmp_path: Path) -> AsyncIterator[Story]:
    async with running_story(tmp_path) as story:
        yield story


def value(
    found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


async def test_metrics_after_a_run_with_a_bounce_and_a_failover(story: Story) -> None:
    await story.restart()  # as `notifier run` starts it: with the consumer's timer
    line = story.line
    await line.load_directory([MARIA])
    await line.send(send_request("msg-1", ["guardian-maria"]))
    await line.final_events("msg-1", 2)
    assert (await story.sendgrid_events([story.bounce()])).status_code == 200
    await line.final_events("msg-1", 3)

    deadline = time.monotonic() + WAIT_SECONDS
    while True:  # the contact-point gauge is refreshed by the consumer's timer
        exposition = (await story.http.get("/metrics")).text
        found = samples(exposition)
        if value(found, "notifier_contact_points", channel="email", status="failing") == 1:
            break
        assert time.monotonic() < deadline, exposition
        await asyncio.sleep(0.1)

    assert value(found, "notifier_send_requests_total", outcome="processed") == 1
    assert value(found, "notifier_deliveries_total", channel="email", status="sent") == 1
    assert value(found, "notifier_deliveries_total", channel="email", status="bounced") == 1
    assert value(found, "notifier_deliveries_total", channel="sms", status="sent") == 1
    assert (
        value(
            found,
            "notifier_failovers_total",
            from_channel="email",
            to_channel="sms",
            reason="mailbox_full",
        )
        == 1
    )
    assert value(found, "notifier_bounces_total", channel="email", reason="mailbox_full") == 1
    assert value(found, "notifier_delivery_latency_seconds_count", channel="email") == 1
    assert value(found, "notifier_contact_points", channel="email", status="active") == 0
    send_requests = line.settings.kafka.send_requests_topic
    lags = [
        v
        for (name, labels), v in found.items()
        if name == "notifier_consumer_lag" and ("topic", send_requests) in labels
    ]
    assert lags == [0.0], "the one partition read is caught up"
    faststream = [name for name, _ in found if name.startswith("faststream_")]
    assert faststream, "FastStream's own Kafka metrics are exposed too"
    assert MARIA_EMAIL not in exposition, "no addresses in label values"

    # A request with nobody to tell (only its sender) is processed, not a duplicate.
    await line.send(send_request("msg-to-self", ["staff-rivera"]))
    while value(found, "notifier_send_requests_total", outcome="processed") < 2:
        assert time.monotonic() < deadline + WAIT_SECONDS, exposition
        await asyncio.sleep(0.1)
        exposition = (await story.http.get("/metrics")).text
        found = samples(exposition)
    assert value(found, "notifier_send_requests_total", outcome="duplicate") == 0

    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian's prometheus package; CI installs it)")
    checked = await asyncio.create_subprocess_exec(
        promtool,
        "check",
        "metrics",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await checked.communicate(exposition.encode())
    assert checked.returncode == 0, output.decode()


def test_every_send_request_outcome_is_exposed_from_the_start() -> None:
    # An alert on increase(...{outcome="dead_lettered"}) needs the series before the first
    # dead letter, or it misses that one.
    exposition = generate_latest(PrometheusMetrics().registry).decode()
    found = samples(exposition)
    for outcome in ("processed", "duplicate", "dead_lettered"):
        assert ("notifier_send_requests_total", frozenset({("outcome", outcome)})) in found

"""The broker, then the database, goes away in the middle of a run and comes back: the
consumer waits and resumes by itself, nothing good is dead-lettered, nothing is lost, and
nothing is sent twice outside the unknown-outcome window (tests/faults/harness.py).

These stop and start the shared local services with scripts/kafka-local and
scripts/postgres-local, so they need the local ones to be the ones the tests use; each
starts its service again before it ends, pass or fail, and waits until it serves.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from tests.conftest import kafka_bootstrap, postgres_url
from tests.faults.harness import FaultRun, FaultSummary, Load, fault_run, local_service

pytestmark = pytest.mark.kafka

LOAD = Load(requests=50, per_request=20, seed=31)
DOWN_SECONDS = 8.0
"""How long a service stays away (the consumer's in-place retries wait 1, 2, 5, 10 s…)."""
BACK_SECONDS = 60.0
"""Longest wait for a restarted broker to serve metadata."""
KAFKA_EXTERNAL = "NOTIFIER_KAFKA_BOOTSTRAP_SERVERS"
POSTGRES_EXTERNAL = "NOTIFIER_TEST_POSTGRES_URL"


async def test_a_broker_restart_mid_run_loses_nothing(
    tmp_path: Path, fault_summary: FaultSummary
) -> None:
    local = f"127.0.0.1:{os.environ.get('KAFKA_LOCAL_PORT', '9092')}"
    if kafka_bootstrap() != local:
        pytest.fail(f"needs the broker of scripts/kafka-local ({local}), not {kafka_bootstrap()}")
    requests = LOAD.send_requests()
    half = len(requests) // 2
    async with fault_run(tmp_path, load=LOAD) as run:
        await run.start_with_directory()
        await run.publish_requests(requests[:half])
        try:
            # The second half is published while the broker is away: the producer copes.
            await _take_away(
                run,
                "kafka-local",
                KAFKA_EXTERNAL,
                meanwhile=lambda: run.publish_requests(requests[half:]),
            )
        finally:
            await _broker_answers()

        verdict = await run.settle()
        note = f"down {DOWN_SECONDS:g} s, half the requests published meanwhile"
        fault_summary.record("broker stopped and restarted", run, verdict, note)
        assert not verdict.failures(), "\n".join([*verdict.failures(), run.logs()])


@pytest.mark.postgres
async def test_a_database_outage_mid_run_loses_nothing_and_dead_letters_nothing(
    tmp_path: Path, fault_summary: FaultSummary
) -> None:
    local = (await local_service("postgres-local", "url", external=POSTGRES_EXTERNAL)).strip()
    if postgres_url() != local:
        pytest.fail(f"needs the server of scripts/postgres-local ({local}), not {postgres_url()}")
    async with fault_run(tmp_path, load=LOAD, backend="postgresql") as run:
        await run.start_with_directory()
        await run.publish_requests(LOAD.send_requests())
        await _take_away(run, "postgres-local", POSTGRES_EXTERNAL)

        verdict = await run.settle()
        note = f"down {DOWN_SECONDS:g} s"
        fault_summary.record("database stopped and restarted", run, verdict, note)
        assert not verdict.failures(), "\n".join([*verdict.failures(), run.logs()])


async def _take_away(
    run: FaultRun,
    script: str,
    external: str,
    *,
    meanwhile: Callable[[], Coroutine[Any, Any, None]] | None = None,
) -> None:
    """Once the providers have taken a fifth of the load, stop the local service, start
    ``meanwhile`` (it may finish after the service is back), wait DOWN_SECONDS, start the
    service again (always), and wait for ``meanwhile``."""
    await run.wait_until_sent(run.load.expected_sends() // 5)
    await local_service(script, "stop", external=external)
    try:
        work = asyncio.create_task(meanwhile()) if meanwhile is not None else None
        await asyncio.sleep(DOWN_SECONDS)
    finally:
        await local_service(script, "start", external=external)
    if work is not None:
        await work


async def _broker_answers() -> None:
    """Wait until the restarted broker serves metadata, so later tests find it whole."""
    deadline = time.monotonic() + BACK_SECONDS
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap(), request_timeout_ms=5000)
        try:
            await admin.start()
            await admin.list_topics()
            return
        except KafkaError as error:
            if time.monotonic() > deadline:
                raise AssertionError(f"the broker is not back: {error!r}") from error
        finally:
            await admin.close()
        await asyncio.sleep(0.5)

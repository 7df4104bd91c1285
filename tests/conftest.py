"""Shared fixtures: the real local Kafka broker and PostgreSQL server (started by
`make test` / .ci/run through scripts/), and the store on both databases.

In CI (``CI`` set) a skipped test is a failure: nothing may be silently left out there.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from notifier.adapters.clock import SystemClock
from notifier.adapters.migrations import migrate
from notifier.adapters.sql.database import create_engine
from notifier.adapters.store import Storage

IN_CI = bool(os.environ.get("CI"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if IN_CI and report.skipped:
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where nothing may be skipped: {report.longrepr}"


def kafka_bootstrap() -> str:
    return os.environ.get("NOTIFIER_KAFKA_BOOTSTRAP_SERVERS") or "127.0.0.1:9092"


def postgres_url() -> str | None:
    return os.environ.get("NOTIFIER_TEST_POSTGRES_URL") or None


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A fresh, empty database on each backend."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db')}/notifier.db"
    url = postgres_url()
    if url is None:
        pytest.skip("NOTIFIER_TEST_POSTGRES_URL is not set (make test starts PostgreSQL)")
    return url


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Storage]:
    engine = create_engine(database_url)
    schema = None
    if engine.dialect.name == "postgresql":
        # A schema per test keeps tests independent on the one shared database.
        schema = f"t_{uuid.uuid4().hex[:12]}"
        await engine.dispose()
        engine = create_engine(database_url, search_path=schema)
        async with engine.begin() as connection:
            await connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    await migrate(engine)
    try:
        yield Storage.on(engine, SystemClock())
    finally:
        if schema is not None:
            async with engine.begin() as connection:
                await connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        await engine.dispose()


TEST_TOPIC_PREFIX = f"t-{uuid.uuid4().hex[:6]}-"
"""This session's topics: deleted at its end without touching another session's."""


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Delete the topics the Kafka tests made, so a developer's local broker doesn't grow
    (and slow down its start) with every run. (aiokafka cannot delete consumer groups; the
    empty ones expire with the broker's offsets retention.)"""
    if not any(item.get_closest_marker("kafka") for item in session.items):
        return
    asyncio.run(_delete_test_leftovers())


async def _delete_test_leftovers() -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap(), request_timeout_ms=10_000)
    try:
        await admin.start()
        topics = [t for t in await admin.list_topics() if t.startswith(TEST_TOPIC_PREFIX)]
        if topics:
            await admin.delete_topics(topics)
    except Exception as error:  # cleanup only: never turn a green run red
        print(f"\nnote: could not delete the test topics: {error!r}")
    finally:
        await admin.close()

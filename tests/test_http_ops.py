"""Readiness says which dependency is missing, with 503, so Kubernetes stops routing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from notifier.bootstrap import open_container
from notifier.config import (
    DatabaseSettings,
    HttpSettings,
    KafkaSettings,
    SendGridSettings,
    Settings,
)
from notifier.entrypoints.http import create_app
from tests.fakes.signing import SendGridWebhookSigner


async def test_readiness_is_503_and_names_the_broker_when_it_cannot_be_reached(
    tmp_path: Path,
) -> None:
    settings = Settings(
        database=DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path}/n.db"),
        kafka=KafkaSettings(bootstrap_servers="127.0.0.1:1"),  # nothing listens there
    )
    container = await open_container(settings)
    app = create_app(settings, consume=False)
    app.state.container = container
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://notifier.test"
        ) as client:
            ready = await client.get("/readyz")
            alive = await client.get("/healthz")
    finally:
        await container.http_client.aclose()
        await container.provider_session.close()
        await container.store.engine.dispose()

    assert ready.status_code == 503
    assert ready.json()["checks"]["database"] == "ok"
    assert ready.json()["checks"]["broker"].startswith("failing")
    assert alive.status_code == 200, "liveness doesn't depend on the broker"
    assert ready.headers["X-Request-Id"]
    assert ready.json()["providers"] == {"twilio": "closed", "sendgrid": "closed"}


async def test_bodies_over_the_limit_are_refused_with_413_before_they_are_read(
    tmp_path: Path,
) -> None:
    settings = Settings(
        database=DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path}/n.db"),
        kafka=KafkaSettings(bootstrap_servers="127.0.0.1:1"),
        http=HttpSettings(max_body_bytes=2048, max_inbound_email_bytes=8192),
        # With a key, the events webhook reads the body (to check its signature).
        sendgrid=SendGridSettings(webhook_public_key=SendGridWebhookSigner().public_key),
    )
    container = await open_container(settings)
    app = create_app(settings, consume=False)
    app.state.container = container

    async def chunks(size: int) -> AsyncIterator[bytes]:
        for _ in range(size // 512):
            yield b"x" * 512

    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://notifier.test"
        ) as client:
            declared = await client.post("/webhooks/sendgrid/events", content=b"[" * 4096)
            streamed = await client.post("/webhooks/sendgrid/events", content=chunks(4096))
            small = await client.post("/webhooks/sendgrid/events", content=b"[]")
            email = await client.post("/webhooks/sendgrid/inbound/secret", content=b"x" * 4096)
    finally:
        await container.http_client.aclose()
        await container.provider_session.close()
        await container.store.engine.dispose()

    assert (declared.status_code, declared.json()["error"]) == (413, "too_large")
    assert (streamed.status_code, streamed.json()["error"]) == (413, "too_large")
    assert small.status_code == 403, "within the limit it reaches the webhook (unsigned)"
    assert email.status_code == 403, "inbound email has a larger limit of its own"

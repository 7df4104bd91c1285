"""Readiness says which dependency is missing, with 503, so Kubernetes stops routing."""

from __future__ import annotations

from pathlib import Path

import httpx

from notifier.bootstrap import open_container
from notifier.config import DatabaseSettings, KafkaSettings, Settings
from notifier.entrypoints.http import create_app


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
        await container.store.engine.dispose()

    assert ready.status_code == 503
    assert ready.json()["checks"]["database"] == "ok"
    assert ready.json()["checks"]["broker"].startswith("failing")
    assert alive.status_code == 200, "liveness doesn't depend on the broker"
    assert ready.headers["X-Request-Id"]

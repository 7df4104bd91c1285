"""OIDC-issued JWTs against the real API, with notifier configured as an operator would:
issuer, audience and JWKS URL of a (fake) identity provider."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from notifier.bootstrap import open_container
from notifier.config import DatabaseSettings, KafkaSettings, OidcSettings, Settings
from notifier.entrypoints.http import create_app
from tests.builders import recipient
from tests.fakes.identity_provider import FakeIdentityProvider


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, FakeIdentityProvider]]:
    with FakeIdentityProvider() as identity:
        settings = Settings(
            database=DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path}/n.db"),
            # The broker is never started here: only the API is exercised.
            kafka=KafkaSettings(bootstrap_servers="127.0.0.1:1"),
            oidc=OidcSettings(
                issuer=identity.issuer, audience=identity.audience, jwks_url=identity.jwks_url
            ),
        )
        container = await open_container(settings)
        await container.store.directory.upsert_recipient(recipient(id="guardian-9"))
        app = create_app(settings, consume=False)
        app.state.container = container
        try:
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://notifier.test"
            ) as client:
                yield client, identity
        finally:
            await container.http_client.aclose()
            await container.store.engine.dispose()


async def test_a_support_jwt_from_the_identity_provider_is_accepted(
    api: tuple[httpx.AsyncClient, FakeIdentityProvider],
) -> None:
    client, identity = api
    token = identity.mint(identity.claims(scope="openid notifier:support", email="alice@d.example"))

    response = await client.get(
        "/api/v1/recipients/guardian-9", headers={"Authorization": f"Bearer {token}"}
    )

    assert response.status_code == 200, response.text
    assert response.json()["recipient"]["id"] == "guardian-9"


async def test_a_jwt_without_notifier_scopes_is_forbidden_and_a_forged_one_unauthorized(
    api: tuple[httpx.AsyncClient, FakeIdentityProvider],
) -> None:
    client, identity = api
    unscoped = identity.mint(identity.claims(scope="openid profile"))
    forged = identity.forge_hs256_with_public_key(identity.claims(scope="notifier:admin"))

    no_scope = await client.get(
        "/api/v1/recipients/guardian-9", headers={"Authorization": f"Bearer {unscoped}"}
    )
    forgery = await client.get("/api/v1/audit", headers={"Authorization": f"Bearer {forged}"})

    assert no_scope.status_code == 403
    assert "none of notifier's scopes" in no_scope.json()["detail"]
    assert forgery.status_code == 401

"""A running notifier to call the support API on: the service on the real broker with fake
Twilio and SendGrid (tests/test_pipeline_kafka.py), its HTTP app called over ASGI, static
tokens of each scope, and the Springfield families as directory events.

    async with api_world(tmp_path) as world:
        await world.load_directory([MARIA])
        response = await world.get("/api/v1/recipients/guardian-maria")
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from pydantic import SecretStr

from notifier.adapters.api_tokens import token_digest
from notifier.adapters.store import Storage
from notifier.config import (
    ApiSettings,
    ApiToken,
    DatabaseSettings,
    SendGridSettings,
    Settings,
    TwilioSettings,
)
from notifier.domain.model import Channel, ContactPoint, ContactStatus, Reason
from notifier.domain.records import AuditEntry
from notifier.entrypoints.http import create_app
from tests.databases import fresh_database
from tests.fakes.sendgrid_server import FakeSendGrid
from tests.fakes.signing import SendGridWebhookSigner, twilio_signature
from tests.fakes.twilio_server import FakeTwilio
from tests.test_pipeline_kafka import Pipeline, recipient, running_pipeline, send_request

BASE_URL = "http://notifier.test"

SUPPORT = "ntf_alice-support-token-for-tests"
OTHER_SUPPORT = "ntf_carol-support-token-for-tests"
ADMIN = "ntf_ada-admin-token-for-tests"
MARIA_SELF = "ntf_maria-self-service-token-for-tests"

TOKENS = [
    ApiToken(name="alice", scope="support", sha256=token_digest(SUPPORT)),
    ApiToken(name="carol", scope="support", sha256=token_digest(OTHER_SUPPORT)),
    ApiToken(name="ada", scope="admin", sha256=token_digest(ADMIN)),
    ApiToken(
        name="maria-app",
        scope="self-service",
        sha256=token_digest(MARIA_SELF),
        recipient_id="guardian-maria",
    ),
]

MARIA_EMAIL = "maria@example.org"
MARIA_PHONE = "+15555550144"
PARK_EMAIL = "park.family@example.org"
LUCIA_PHONE = "+15555550188"

MARIA = recipient(
    "guardian-maria",
    "Maria",
    "guardian",
    language="es",
    preferred_channel="email",
    email=MARIA_EMAIL,
    phone=MARIA_PHONE,
)
DENNIS = recipient(
    "guardian-dennis",
    "Dennis",
    "guardian",
    preferred_channel="email",
    email=PARK_EMAIL,
    phone="+15555550123",
)
MAYA = recipient(
    "guardian-maya",
    "Maya",
    "guardian",
    preferred_channel="email",
    email=PARK_EMAIL,
    phone="+15555550124",
)
LUCIA = recipient(
    "guardian-lucia",
    "Lucía",
    "guardian",
    language="es",
    phone=LUCIA_PHONE,
    email="lucia@example.org",
)


@dataclass
class ApiWorld:
    line: Pipeline
    http: httpx.AsyncClient
    signer: SendGridWebhookSigner

    @property
    def settings(self) -> Settings:
        return self.line.settings

    @property
    def store(self) -> Storage:
        assert self.line.container is not None
        return self.line.container.store

    async def load_directory(self, recipients: list[dict[str, Any]]) -> None:
        await self.line.load_directory(recipients)

    async def deliver(self, message_id: str, recipient_ids: list[str], deliveries: int) -> None:
        """Send a message through the pipeline and wait until its deliveries are done."""
        await self.line.send(send_request(message_id, recipient_ids))
        await self.line.final_events(message_id, deliveries)

    async def bounce(self, address: str) -> None:
        """SendGrid reports (signed) that the last mail to ``address`` bounced: mailbox full."""
        mail = next(
            m
            for m in reversed(self.line.sendgrid.accepted)
            if m.body["personalizations"][0]["to"][0]["email"] == address
        )
        event = {
            "email": address,
            "timestamp": int(time.time()),
            "event": "bounce",
            "type": "bounce",
            "bounce_classification": "Mailbox Unavailable",
            "reason": "552 5.2.2 The email account that you tried to reach is over quota",
            "status": "5.2.2",
            "sg_event_id": uuid.uuid4().hex,
            "sg_message_id": f"{mail.message_id}.filterdrecv-1234-1-5E3A",
            **mail.body["custom_args"],
        }
        response = await self.sendgrid_events([event])
        assert response.status_code == 200, response.text

    async def sendgrid_events(self, events: list[dict[str, Any]]) -> httpx.Response:
        body = orjson.dumps(events)
        headers = self.signer.sign(body, int(time.time()))
        return await self.http.post("/webhooks/sendgrid/events", content=body, headers=headers)

    async def text_in(self, sender: str, body: str) -> httpx.Response:
        """The person texts ``body`` (signed by Twilio as an inbound message)."""
        form = {
            "MessageSid": f"SM{uuid.uuid4().hex}",
            "From": sender,
            "To": "+15555550100",
            "Body": body,
            "AccountSid": self.line.twilio.account_sid,
        }
        signature = twilio_signature(
            self.line.twilio.auth_token, f"{BASE_URL}/webhooks/twilio/inbound", form
        )
        return await self.http.post(
            "/webhooks/twilio/inbound", data=form, headers={"X-Twilio-Signature": signature}
        )

    async def mark_failing(self, channel: Channel, address: str) -> ContactPoint:
        """Straight into the store, for tests of the API's shape rather than of bounces."""
        point = ContactPoint(
            channel, address, ContactStatus.FAILING, Reason.MAILBOX_FULL, datetime.now(UTC)
        )
        await self.store.contact_points.set_contact_point(point)
        return point

    async def contact_point(self, channel: Channel, address: str) -> ContactPoint:
        return (await self.store.contact_points.contact_points([(channel, address)]))[
            (channel, address)
        ]

    async def audit(self) -> list[AuditEntry]:
        return await self.store.audit.audit_entries()

    async def get(
        self,
        path: str,
        *,
        token: str | None = SUPPORT,
        headers: Mapping[str, str] | None = None,
        **params: Any,
    ) -> httpx.Response:
        return await self.http.get(path, params=params, headers=_headers(token, headers))

    async def reset(
        self,
        channel: str,
        address: str,
        note: str | None = "called the family; the inbox has room again",
        *,
        token: str | None = SUPPORT,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        return await self.http.post(
            f"/api/v1/contact-points/{channel}/{address}/reset",
            json={} if note is None else {"note": note},
            headers=_headers(token, headers),
        )


def _headers(token: str | None, extra: Mapping[str, str] | None) -> dict[str, str]:
    headers = dict(extra or {})
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return headers


@asynccontextmanager
async def api_world(
    tmp_path: Path, *, database: str = "sqlite", **api: Any
) -> AsyncIterator[ApiWorld]:
    """The service with its API, on SQLite (a file in ``tmp_path``) or on a fresh PostgreSQL
    database; ``api`` overrides ApiSettings (the rate limit)."""
    signer = SendGridWebhookSigner()
    async with fresh_database(tmp_path, database, "t_api") as url:

        def configure(settings: Settings, twilio: FakeTwilio, sendgrid: FakeSendGrid) -> Settings:
            return settings.model_copy(
                update={
                    "sendgrid": SendGridSettings(
                        api_key=SecretStr(sendgrid.api_key),
                        api_base_url=sendgrid.base_url,
                        webhook_public_key=signer.public_key,
                    ),
                    "twilio": TwilioSettings(
                        account_sid=twilio.account_sid,
                        auth_token=SecretStr(twilio.auth_token),
                        api_base_url=twilio.base_url,
                    ),
                    "api": ApiSettings(tokens=TOKENS, **api),
                    "database": DatabaseSettings(url=url),
                }
            )

        async with running_pipeline(tmp_path, configure) as line:
            app = create_app(line.settings)
            app.state.container = line.container
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url=BASE_URL
            ) as http:
                yield ApiWorld(line, http, signer)

"""The service as the end-to-end stories meet it: the real broker, the real HTTP app (webhooks
and API, called over ASGI), fake Twilio, SendGrid and DeepL servers, webhooks signed (or
authenticated) like the vendors'."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
from pydantic import SecretStr

from notifier.adapters.api_tokens import token_digest
from notifier.config import (
    ApiSettings,
    ApiToken,
    DatabaseSettings,
    DeepLSettings,
    DeliverySettings,
    HttpSettings,
    SendGridSettings,
    Settings,
    TranslationSettings,
    TwilioSettings,
)
from notifier.entrypoints.http import create_app
from tests.fakes.deepl_server import FakeDeepL
from tests.fakes.sendgrid_server import FakeSendGrid
from tests.fakes.signing import SendGridWebhookSigner, twilio_signature
from tests.fakes.twilio_server import FakeTwilio
from tests.test_pipeline_kafka import Pipeline, running_pipeline

SUPPORT_TOKEN = "support-token-for-tests"
MARIA_TOKEN = "maria-self-service-token"
STATUS_URL = "https://notifier.example/webhooks/twilio/status"
INBOUND_URL = "http://notifier.test/webhooks/twilio/inbound"
INBOUND_EMAIL_SECRET = "inbound-parse-secret"
REPLY_ADDRESS_SECRET = "reply-address-secret"
MARIA_EMAIL = "maria@example.org"
MARIA_PHONE = "+15555550144"


@dataclass
class Story:
    line: Pipeline
    http: httpx.AsyncClient
    signer: SendGridWebhookSigner
    lifespans: AsyncExitStack

    async def restart(self) -> None:
        """Stop the service, then start it as `notifier run` does: the app's own lifespan
        (consumer, overdue timer) on the same store and topics."""
        await self.line.stop_service()
        app = create_app(self.line.settings)
        # Runs after the lifespan has closed the container, so the pipeline won't close it again.
        self.lifespans.callback(setattr, self.line, "container", None)
        await self.lifespans.enter_async_context(app.router.lifespan_context(app))
        self.line.container = app.state.container
        self.http._transport = httpx.ASGITransport(app=app)

    async def sendgrid_events(
        self, events: list[dict[str, Any]], *, at: int | None = None
    ) -> httpx.Response:
        body = orjson.dumps(events)
        headers = self.signer.sign(body, at if at is not None else int(time.time()))
        return await self.http.post("/webhooks/sendgrid/events", content=body, headers=headers)

    async def twilio_status(self, form: dict[str, str]) -> httpx.Response:
        signature = twilio_signature(self.line.twilio.auth_token, STATUS_URL, form)
        return await self.http.post(
            "/webhooks/twilio/status", data=form, headers={"X-Twilio-Signature": signature}
        )

    async def reset(
        self, channel: str, address: str, note: str = "called the family"
    ) -> httpx.Response:
        return await self.http.post(
            f"/api/v1/contact-points/{channel}/{address}/reset",
            json={"note": note},
            headers={"Authorization": f"Bearer {SUPPORT_TOKEN}"},
        )

    async def text_from(self, phone: str, body: str, sid: str | None = None) -> httpx.Response:
        """An inbound text, signed like Twilio's."""
        form = {
            "MessageSid": sid or f"SM{uuid.uuid4().hex}",
            "From": phone,
            "To": "+15555550100",
            "Body": body,
            "AccountSid": self.line.twilio.account_sid,
        }
        signature = twilio_signature(self.line.twilio.auth_token, INBOUND_URL, form)
        return await self.http.post(
            "/webhooks/twilio/inbound", data=form, headers={"X-Twilio-Signature": signature}
        )

    async def email_reply(
        self,
        *,
        sender: str,
        to: str,
        text: str,
        message_id: str | None = None,
        files: Sequence[tuple[str, str, bytes]] = (),
        secret: str | None = INBOUND_EMAIL_SECRET,
        subject: str = "Re: New message from Ms. Rivera",
    ) -> httpx.Response:
        """An email as SendGrid Inbound Parse posts it (multipart), with the secret in the
        URL's basic-auth credentials."""
        message_id = message_id or f"<{uuid.uuid4().hex}@mail.example.org>"
        fields = {
            "from": f"Someone <{sender}>",
            "to": to,
            "subject": subject,
            "text": text,
            "envelope": orjson.dumps({"to": [to], "from": sender}).decode(),
            "headers": f"Message-ID: {message_id}\nFrom: {sender}\nTo: {to}\n",
            "attachments": str(len(files)),
            "SPF": "pass",
        }
        return await self.http.post(
            "/webhooks/sendgrid/inbound",
            data=fields,
            files=[
                (f"attachment{n}", (name, content, kind))
                for n, (name, kind, content) in enumerate(files, start=1)
            ]
            or None,
            auth=("sendgrid", secret) if secret is not None else httpx.USE_CLIENT_DEFAULT,
        )

    def bounce(self, mail_index: int = -1, **fields: Any) -> dict[str, Any]:
        """A SendGrid bounce event for one of the mails the fake accepted."""
        mail = self.line.sendgrid.accepted[mail_index]
        custom = mail.body["custom_args"]
        return {
            "email": mail.body["personalizations"][0]["to"][0]["email"],
            "timestamp": int(time.time()),
            "event": "bounce",
            "type": "bounce",
            "bounce_classification": "Mailbox Unavailable",
            "reason": "552 5.2.2 The email account that you tried to reach is over quota",
            "status": "5.2.2",
            "sg_event_id": uuid.uuid4().hex,
            "sg_message_id": f"{mail.message_id}.filterdrecv-1234-1-5E3A",
            **custom,
        } | fields


@asynccontextmanager
async def running_story(tmp_path: Path, deepl: FakeDeepL | None = None) -> AsyncIterator[Story]:
    """``deepl``: translate with this fake DeepL; without it nothing is translated."""
    signer = SendGridWebhookSigner()

    def configure(settings: Settings, twilio: FakeTwilio, sendgrid: FakeSendGrid) -> Settings:
        return settings.model_copy(
            update={
                "sendgrid": SendGridSettings(
                    api_key=SecretStr(sendgrid.api_key),
                    api_base_url=sendgrid.base_url,
                    webhook_public_key=signer.public_key,
                    webhook_max_age_seconds=300,
                    inbound_secret=SecretStr(INBOUND_EMAIL_SECRET),
                ),
                "twilio": TwilioSettings(
                    account_sid=twilio.account_sid,
                    auth_token=SecretStr(twilio.auth_token),
                    api_base_url=twilio.base_url,
                    status_callback_url=STATUS_URL,
                ),
                "api": ApiSettings(
                    tokens=[
                        ApiToken(name="alice", scope="support", sha256=token_digest(SUPPORT_TOKEN)),
                        ApiToken(
                            name="maria-app",
                            scope="self-service",
                            sha256=token_digest(MARIA_TOKEN),
                            recipient_id="guardian-maria",
                        ),
                    ]
                ),
                "http": HttpSettings(public_base_url="https://notifier.example"),
                "delivery": DeliverySettings(
                    resume_link_secret=SecretStr("resume-secret"),
                    reply_address_secret=SecretStr(REPLY_ADDRESS_SECRET),
                    overdue_seconds=2,
                    overdue_check_seconds=0.2,
                ),
                "database": DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path}/notifier.db"),
            }
            | _translation(deepl)
        )

    async with running_pipeline(tmp_path, configure) as line, AsyncExitStack() as lifespans:
        app = create_app(line.settings)
        app.state.container = line.container
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://notifier.test"
        ) as http:
            yield Story(line, http, signer, lifespans)


def _translation(deepl: FakeDeepL | None) -> dict[str, Any]:
    if deepl is None:
        return {}
    return {
        "translation": TranslationSettings(provider="deepl", timeout_seconds=2),
        "deepl": DeepLSettings(auth_key=SecretStr(deepl.auth_key), server_url=deepl.base_url),
    }

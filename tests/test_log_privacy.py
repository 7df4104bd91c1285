"""No address, token or secret in any log line of the running service, at DEBUG.

The real ``notifier run`` process (tests/test_service_process.py's harness) with every
secret configured, logging at DEBUG, is taken through each edge with real addresses and
tokens: a delivery by SMS and by email, a bounce that fails over to a text with a resume
link, each webhook (the Inbound Parse secret in the path), the API with a static token and
an OIDC JWT and addresses in paths and queries (encoded as clients encode them, and not),
the console's search, reset and audit pages, and the resume link. Everything the process
wrote — uvicorn's access and error logs, aiosqlite's statements with their parameters,
FastStream, httpx, ours — is then searched for each address in plain, URL-encoded (either case,
twice), and base64 form, and for each token and secret."""

from __future__ import annotations

import base64
import json
import re
import secrets
import signal
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote, quote_plus, urlsplit

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from notifier.adapters.api_tokens import new_token, token_digest
from tests.conftest import kafka_bootstrap
from tests.fakes.identity_provider import FakeIdentityProvider
from tests.fakes.sendgrid_server import FakeSendGrid
from tests.fakes.signing import SendGridWebhookSigner, twilio_signature
from tests.fakes.twilio_server import FakeTwilio
from tests.test_console import csrf_of
from tests.test_pipeline_kafka import DISTRICT, recipient, send_request
from tests.test_service_process import (
    EXIT_SECONDS,
    WAIT_SECONDS,
    Harness,
    ServiceProcess,
    _service_env,
    _within,
)

pytestmark = pytest.mark.kafka

GUARDIAN_PHONE = "+15554717980"
STAFF_PHONE = "+15554717923"
STAFF_EMAIL = "jordan.okafor@example.org"
GUARDIAN = recipient("guardian-dennis", "Dennis", "guardian", phone=GUARDIAN_PHONE, app=False)
# Email first, a text when the mailbox is full.
STAFF = recipient(
    "staff-okafor",
    "Jordan",
    "staff",
    phone=STAFF_PHONE,
    email=STAFF_EMAIL,
    preferred_channel="email",
    app=False,
)
ADDRESSES = (GUARDIAN_PHONE, STAFF_PHONE, STAFF_EMAIL)
RESUME_LINK = re.compile(r"/r/([A-Za-z0-9_=-]+\.[A-Za-z0-9_=-]+)")


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[tuple[Harness, FakeIdentityProvider]]:
    run = uuid.uuid4().hex[:10]
    with FakeTwilio() as twilio, FakeSendGrid() as sendgrid, FakeIdentityProvider() as identity:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap(), acks="all")
        await producer.start()
        harness = Harness(
            tmp_path, _service_env(tmp_path, run, twilio, sendgrid), twilio, sendgrid, producer
        )
        try:
            yield harness, identity
        finally:
            try:
                for service in harness.processes:
                    await service.kill()
            finally:
                await producer.stop()


class Secrets:
    """Every credential the service is given or hands out in this test."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.api_token = new_token()
        self.inbound_secret = secrets.token_urlsafe(24)
        self.resume_link_secret = secrets.token_urlsafe(24)
        self.reply_address_secret = secrets.token_urlsafe(24)
        self.signer = SendGridWebhookSigner()

    def env(self, identity: FakeIdentityProvider) -> dict[str, str]:
        token = {"name": "alice", "scope": "admin", "sha256": token_digest(self.api_token)}
        return {
            "NOTIFIER_LOG_LEVEL": "DEBUG",
            "NOTIFIER_API_TOKENS": json.dumps([token]),
            "NOTIFIER_OIDC_ISSUER": identity.issuer,
            "NOTIFIER_OIDC_AUDIENCE": identity.audience,
            "NOTIFIER_OIDC_JWKS_URL": identity.jwks_url,
            "NOTIFIER_SENDGRID_INBOUND_SECRET": self.inbound_secret,
            "NOTIFIER_SENDGRID_WEBHOOK_PUBLIC_KEY": self.signer.public_key,
            "NOTIFIER_TWILIO_STATUS_CALLBACK_URL": f"{self.base_url}/webhooks/twilio/status",
            "NOTIFIER_TWILIO_INBOUND_URL": f"{self.base_url}/webhooks/twilio/inbound",
            "NOTIFIER_HTTP_PUBLIC_BASE_URL": self.base_url,
            "NOTIFIER_DELIVERY_RESUME_LINK_SECRET": self.resume_link_secret,
            "NOTIFIER_DELIVERY_REPLY_ADDRESS_SECRET": self.reply_address_secret,
        }


def url_forms(text: str) -> set[str]:
    """``text`` as it may travel in a URL: encoded with upper- or lower-case hex digits, as
    a form value, and encoded twice."""
    once = quote(text, safe="")
    lower_hex = re.sub(r"%[0-9A-F]{2}", lambda escape: escape.group(0).lower(), once)
    return {once, lower_hex, quote_plus(text), quote(once, safe="")}


def base64_forms(text: str) -> set[str]:
    """The characters of ``text``'s base64 (standard and URL-safe) that depend on it alone,
    at each of the three offsets it can have inside longer encoded data."""
    forms = set()
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + text.encode()).decode().rstrip("=")
        # The first group holds the padding's bits, the last one the next bytes'.
        core = encoded[4 if offset else 0 : len(encoded) - len(encoded) % 4 or None]
        forms |= {core, core.replace("+", "-").replace("/", "_")}
    return {form for form in forms if len(form) >= 8}


def leaks(output: str, secret_values: dict[str, str]) -> list[str]:
    """What of the addresses and secrets ``output`` shows, each with a line it is on."""
    lowered = output.lower()
    forbidden: dict[str, str] = {}
    for address in ADDRESSES:
        for form in {address} | url_forms(address) | base64_forms(address):
            forbidden[form] = address
    for address in ADDRESSES:
        local_part, at, _ = address.partition("@")
        forbidden[local_part if at else address.removeprefix("+")] = address
    for what, value in secret_values.items():
        forbidden[value] = what
        forbidden |= dict.fromkeys(url_forms(value), what)
    found = []
    for form, what in forbidden.items():
        # Case-blind: a log line may have lower-cased it (and %2b is %2B).
        at = lowered.find(form.lower())
        if at != -1:
            start = lowered.rfind("\n", 0, at) + 1
            found.append(f"{what!r} as {form!r} in: {output[start : start + 400]}")
    return found


async def test_no_address_token_or_secret_reaches_any_log_line_at_debug(
    harness: tuple[Harness, FakeIdentityProvider],
) -> None:
    service_harness, identity = harness
    base_url = f"http://127.0.0.1:{service_harness.env['NOTIFIER_HTTP_PORT']}"
    keys = Secrets(base_url)
    service_harness.env.update(keys.env(identity))
    twilio, sendgrid = service_harness.twilio, service_harness.sendgrid
    service = await service_harness.start_service()
    await service.wait_ready()
    await load_directory(service_harness, service)

    # A text for the guardian, an email for the staff member, whose full mailbox then fails
    # the email over to a text with a resume link.
    await service_harness.send(
        send_request("msg-privacy", ["guardian-dennis", "staff-okafor"], conversation_id="c-1")
    )
    assert await _within(WAIT_SECONDS, lambda: bool(twilio.messages and sendgrid.accepted)), (
        f"the text and the email were not both sent\n{service.tail()}"
    )
    mail = sendgrid.accepted[0].body
    reply_address = mail["reply_to"]["email"]
    async with httpx.AsyncClient(base_url=base_url, timeout=10.0) as http:
        bounce = [full_mailbox(mail, STAFF_EMAIL, sendgrid.accepted[0].message_id)]
        events = await sendgrid_events(http, keys.signer, bounce)
        assert events.status_code == 200, events.text
        assert await _within(WAIT_SECONDS, lambda: len(twilio.messages) >= 2), (
            f"the bounced email did not fail over to a text\n{service.tail()}"
        )
        fallback = next(m for m in twilio.received if m.form.get("To") == STAFF_PHONE)
        found = RESUME_LINK.search(fallback.form["Body"])
        assert found is not None, f"no resume link in {fallback.form['Body']!r}"
        resume_token = found.group(1)

        await drive_webhooks(http, keys, twilio, reply_address)
        jwt = identity.mint(identity.claims(scope="openid notifier:admin", email=STAFF_EMAIL))
        await drive_api(http, keys.api_token, jwt)
        await drive_console(http, keys.api_token)
        for method, path in (
            ("GET", f"/r/{resume_token}"),
            ("POST", f"/r/{resume_token}"),
            ("POST", f"/r/{resume_token}/confirm"),
        ):
            await http.request(method, path)

    assert service.process is not None
    service.process.send_signal(signal.SIGTERM)
    assert await service.wait_exit(EXIT_SECONDS) == 0, service.tail()
    output = service.log_path.read_text(errors="replace")

    secret_values = {
        "API token": keys.api_token,
        "OIDC JWT": jwt,
        "resume link token": resume_token,
        "resume link signature": resume_token.split(".")[1],
        "Inbound Parse secret": keys.inbound_secret,
        "resume link secret": keys.resume_link_secret,
        "reply address secret": keys.reply_address_secret,
        "reply address token": reply_address.partition("@")[0].removeprefix("reply+"),
        "Twilio auth token": twilio.auth_token,
        "SendGrid API key": sendgrid.api_key,
    } | {f"OIDC JWT part {n}": part for n, part in enumerate(jwt.split(".")[1:], start=2)}
    found = leaks(output, secret_values)
    assert not found, "\n".join(found)

    # The output was the whole story (so the search above was not vacuous): DEBUG lines, and
    # an access line for each kind of request, its route still readable.
    assert '"level": "debug"' in output, service.tail()
    access = "\n".join(
        orjson.loads(line)["event"] for line in output.splitlines() if '"uvicorn.access"' in line
    )
    for shown in (
        '"GET /r/*** HTTP/1.1" 200',
        '"POST /r/***/confirm HTTP/1.1"',
        '"POST /webhooks/sendgrid/inbound/*** HTTP/1.1" 200',
        '"GET /api/v1/contact-points?phone=+***80 HTTP/1.1" 200',
        '"POST /api/v1/contact-points/email/***@example.org/reset HTTP/1.1" 200',
        '"GET /console/search?q=*** HTTP/1.1" 200',
        '"GET /console/audit?address=***@example.org HTTP/1.1" 200',
    ):
        assert shown in access, f"no access line with {shown}:\n{access}"


async def load_directory(harness: Harness, service: ServiceProcess) -> None:
    await harness.publish(harness.topic("DISTRICTS"), DISTRICT, str(DISTRICT["id"]))
    for person in (GUARDIAN, STAFF):
        await harness.publish(harness.topic("RECIPIENTS"), person, person["id"])
    applied = {"outcome": "applied"}
    await service.wait_for_metric("notifier_directory_events_total", 1, kind="district", **applied)
    await service.wait_for_metric("notifier_directory_events_total", 2, kind="recipient", **applied)


def full_mailbox(mail: dict[str, object], email: str, message_id: str) -> dict[str, object]:
    custom = mail["custom_args"]
    assert isinstance(custom, dict)
    return {
        "email": email,
        "timestamp": int(time.time()),
        "event": "bounce",
        "type": "bounce",
        "bounce_classification": "Mailbox Unavailable",
        "reason": f"552 5.2.2 <{email}>: the email account is over quota",
        "status": "5.2.2",
        "sg_event_id": uuid.uuid4().hex,
        "sg_message_id": f"{message_id}.filterdrecv-1234-1-5E3A",
        **custom,
    }


async def sendgrid_events(
    http: httpx.AsyncClient, signer: SendGridWebhookSigner, events: list[dict[str, object]]
) -> httpx.Response:
    body = orjson.dumps(events)
    headers = signer.sign(body, int(time.time()))
    return await http.post("/webhooks/sendgrid/events", content=body, headers=headers)


async def drive_webhooks(
    http: httpx.AsyncClient, keys: Secrets, twilio: FakeTwilio, reply_address: str
) -> None:
    sent = next(m for m in twilio.messages if m["to"] == GUARDIAN_PHONE)
    status = {
        "MessageSid": sent["sid"],
        "MessageStatus": "delivered",
        "To": GUARDIAN_PHONE,
        "From": "+15555550100",
        "AccountSid": twilio.account_sid,
    }
    answer = await http.post(
        "/webhooks/twilio/status",
        data=status,
        headers={
            "X-Twilio-Signature": twilio_signature(
                twilio.auth_token, f"{keys.base_url}/webhooks/twilio/status", status
            )
        },
    )
    assert answer.status_code == 204, answer.text
    text = {
        "MessageSid": f"SM{uuid.uuid4().hex}",
        "From": GUARDIAN_PHONE,
        "To": "+15555550100",
        "Body": f"Thanks! Call me on {GUARDIAN_PHONE} or write to {STAFF_EMAIL}",
        "AccountSid": twilio.account_sid,
    }
    answer = await http.post(
        "/webhooks/twilio/inbound",
        data=text,
        headers={
            "X-Twilio-Signature": twilio_signature(
                twilio.auth_token, f"{keys.base_url}/webhooks/twilio/inbound", text
            )
        },
    )
    assert answer.status_code == 200, answer.text
    email = {
        "from": f"Jordan <{STAFF_EMAIL}>",
        "to": reply_address,
        "subject": "Re: New message",
        "text": "I'll be there.",
        "envelope": orjson.dumps({"to": [reply_address], "from": STAFF_EMAIL}).decode(),
        "headers": f"Message-ID: <{uuid.uuid4().hex}@example.org>\nFrom: {STAFF_EMAIL}\n",
        "attachments": "0",
        "SPF": "pass",
    }
    for path in (f"/webhooks/sendgrid/inbound/{keys.inbound_secret}", "/webhooks/sendgrid/inbound"):
        answer = await http.post(path, data=email, auth=("sendgrid", keys.inbound_secret))
        assert answer.status_code == 200, answer.text
    # A wrong guess of the secret is logged as a refusal, with its path.
    await http.post(f"/webhooks/sendgrid/inbound/{keys.inbound_secret[::-1]}", data=email)


async def drive_api(http: httpx.AsyncClient, api_token: str, jwt: str) -> None:
    static = {"Authorization": f"Bearer {api_token}"}
    for query in (
        {"phone": GUARDIAN_PHONE},  # sent as %2B
        {"email": STAFF_EMAIL},  # sent as %40
    ):
        answer = await http.get("/api/v1/contact-points", params=query, headers=static)
        assert answer.status_code == 200, answer.text
    encoded_email = quote(STAFF_EMAIL, safe="")
    for raw in (
        f"/api/v1/contact-points?phone={GUARDIAN_PHONE}",  # a bare + (a space, then fixed)
        f"/api/v1/contact-points?phone={quote(GUARDIAN_PHONE, safe='').lower()}",
        f"/api/v1/contact-points?email={quote(encoded_email, safe='')}",  # twice: a 422
    ):
        await http.get(raw, headers=static)
    for channel, address in (("email", STAFF_EMAIL), ("sms", STAFF_PHONE)):
        answer = await http.post(
            f"/api/v1/contact-points/{channel}/{quote(address, safe='')}/reset",
            json={"note": "the family called"},
            headers=static,
        )
        assert answer.status_code in (200, 404), answer.text
    await http.post(
        f"/api/v1/contact-points/email/{STAFF_EMAIL}/reset",
        json={"note": "once more, the address as typed"},
        headers=static,
    )
    with_jwt = {"Authorization": f"Bearer {jwt}"}
    answer = await http.get("/api/v1/recipients/staff-okafor", headers=with_jwt)
    assert answer.status_code == 200, answer.text
    answer = await http.get("/api/v1/audit", params={"address": STAFF_EMAIL}, headers=with_jwt)
    assert answer.status_code == 200, answer.text
    # Refused tokens are logged as refusals, not as themselves.
    await http.get("/api/v1/audit", headers={"Authorization": f"Bearer {api_token}x"})
    await http.get("/api/v1/audit", headers={"Authorization": f"Bearer {jwt[:-4]}AAAA"})


async def drive_console(http: httpx.AsyncClient, api_token: str) -> None:
    form = await http.get("/console")
    signed_in = await http.post(
        "/console/sign-in", data={"token": api_token, "csrf": csrf_of(form.text)}
    )
    assert signed_in.status_code == 303, signed_in.text
    for query in (STAFF_EMAIL, GUARDIAN_PHONE, "Jordan"):
        page = await http.get("/console/search", params={"q": query})
        assert page.status_code == 200, page.text
    page = await http.get("/console/recipients/staff-okafor")
    assert page.status_code == 200, page.text
    csrf = csrf_of(page.text)
    reset_path = f"/console/contact-points/email/{quote(STAFF_EMAIL, safe='@+')}/reset"
    fields = {"csrf": csrf, "note": "she emptied her inbox", "recipient_id": "staff-okafor"}
    for path in (reset_path, f"{reset_path}/confirm"):
        answer = await http.post(path, data=fields)
        assert answer.status_code in (200, 303), answer.text
        location = answer.headers.get("location")
        if location:
            await http.get(urlsplit(location).path)
    page = await http.get("/console/audit", params={"address": STAFF_EMAIL})
    assert page.status_code == 200, page.text

"""Property-based fuzzing of every HTTP endpoint: the provider webhooks, the support API, the
console, the resume link and the ops endpoints, on the real app (over ASGI) backed by the
service on the real broker, on SQLite and on PostgreSQL.

Hypothesis draws requests — methods, path segments (any unicode, percent-encoded or raw,
huge, dot segments, bad escapes), query strings, headers (tokens of every scope and none,
content types that lie, cookies, request ids), bodies (arbitrary bytes, JSON of any shape,
forms, multipart with files, over the size limit) — and, to get past the door, requests
signed or authenticated as the providers and support staff do, carrying hostile values (NUL,
CR/LF, emoji, huge numbers, unknown ids) into the handlers behind it. The properties:

- never a 5xx, never an exception escaping the app;
- a refusal is a 4xx (a 2xx where the input happens to be valid, a 3xx on the console's
  redirects), answered as JSON with a ``detail`` on the API and webhooks and as an HTML page
  on the console and the resume link (except what the framework refuses before any route
  runs: no such path, wrong method, a body over the limit or not the form it claims to be);
- numbers at and past 64 bits, wherever one is taken (page offsets, event timestamps, link
  expiries), are refused, not crashed on — a test of its own, as hypothesis rarely draws
  them deep inside a whole request;
- every API and webhook refusal has the documented shape ``{"error": …, "detail": …}``
  (README, "Errors are JSON"), tested apart so that a shape slip doesn't hide a 5xx.

Unlike the stream fuzzer, ``@given`` runs on the async tests themselves (pytest-asyncio drives
each example on the session loop): one request per example against one running service per
module and database, so hypothesis can shrink a failure to a minimal request. Examples share
that service; the state they leave (a reset, a STOP) is the kind of state any request meets.
Settings are derandomized with no example database, so CI runs the same requests every time
(``NOTIFIER_FUZZ_SCALE`` multiplies the number of examples for a longer local run). A list's
first entries are drawn most often, so the likeliest trouble is listed first.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest
from hypothesis import given, reject, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from notifier.adapters.api_tokens import token_digest
from notifier.config import (
    ApiSettings,
    ApiToken,
    DatabaseSettings,
    DeliverySettings,
    SendGridSettings,
    Settings,
    TwilioSettings,
)
from notifier.domain.resume_links import make_token
from notifier.entrypoints.console import NONCE_COOKIE, SESSION_COOKIE, csrf_value
from notifier.entrypoints.http import create_app
from tests.databases import Backend, fresh_database
from tests.fakes.sendgrid_server import FakeSendGrid
from tests.fakes.signing import SendGridWebhookSigner, twilio_signature
from tests.fakes.twilio_server import FakeTwilio
from tests.faults.fuzzing import (
    BACKENDS,
    REPRODUCIBLE,
    examples,
    hostile_text,
    huge_text,
    json_values,
    preview,
)
from tests.test_pipeline_kafka import (
    DIRECTORY,
    Pipeline,
    SettingsChange,
    recipient,
    running_pipeline,
    send_request,
)

pytestmark = pytest.mark.kafka

BASE_URL = "http://notifier.test"
STATUS_URL = "https://notifier.example/webhooks/twilio/status"
INBOUND_TEXT_URL = f"{BASE_URL}/webhooks/twilio/inbound"
INBOUND_EMAIL_SECRET = "inbound-parse-secret"
RESUME_SECRET = "resume-secret"
SUPPORT_TOKEN = "ntf_fuzz-support-token"
ADMIN_TOKEN = "ntf_fuzz-admin-token"
MARIA_TOKEN = "ntf_fuzz-maria-self-service-token"
MARIA = recipient(
    "guardian-maria",
    "Maria",
    "guardian",
    language="es",
    preferred_channel="email",
    email="maria@example.org",
    phone="+15555550144",
)
PEOPLE = [*DIRECTORY, MARIA]
SEED_MESSAGE = "msg-seed"

FUZZ = settings(REPRODUCIBLE, max_examples=examples(100))


@dataclass
class Service:
    """The running service, its app over ASGI, and values a request can name to get past
    "not found" into the code behind it."""

    line: Pipeline
    http: httpx.AsyncClient
    signer: SendGridWebhookSigner
    recipient_ids: list[str]
    phones: list[str]
    emails: list[str]
    message_ids: list[str]
    sms_sids: list[str]
    custom_args: list[dict[str, str]]
    sessions: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Console sessions by token name: (token, nonce)."""

    @property
    def twilio_token(self) -> str:
        return self.line.twilio.auth_token

    def __repr__(self) -> str:
        return f"Service({self.line.settings.database.url.split(':', 1)[0]})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))  # how hypothesis prints a falsifying example


def configure(url: str, signer: SendGridWebhookSigner) -> SettingsChange:
    def change(settings: Settings, twilio: FakeTwilio, sendgrid: FakeSendGrid) -> Settings:
        return settings.model_copy(
            update={
                "database": DatabaseSettings(url=url),
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
                        ApiToken(name="ada", scope="admin", sha256=token_digest(ADMIN_TOKEN)),
                        ApiToken(
                            name="maria-app",
                            scope="self-service",
                            sha256=token_digest(MARIA_TOKEN),
                            recipient_id="guardian-maria",
                        ),
                    ],
                    # The fuzzer is one very busy caller; the limit itself is tested elsewhere.
                    rate_limit_per_minute=1_000_000,
                    rate_limit_burst=1_000_000,
                ),
                "http": settings.http.model_copy(
                    update={"public_base_url": "https://notifier.example"}
                ),
                "delivery": DeliverySettings(
                    resume_link_secret=SecretStr(RESUME_SECRET),
                    reply_address_secret=SecretStr("reply-address-secret"),
                ),
            }
        )

    return change


@pytest.fixture(scope="module")
async def service(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Service]:
    backend: Backend = request.param  # each test names its databases (indirect)
    tmp_path: Path = tmp_path_factory.mktemp(f"fuzz-http-{backend}")
    signer = SendGridWebhookSigner()
    async with (
        fresh_database(tmp_path, backend, "t_fuzz") as url,
        running_pipeline(tmp_path, configure(url, signer)) as line,
    ):
        app = create_app(line.settings)
        app.state.container = line.container
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=BASE_URL
        ) as http:
            await line.load_directory(PEOPLE)
            await line.send(send_request(SEED_MESSAGE, [person["id"] for person in PEOPLE]))
            events = await line.final_events(SEED_MESSAGE, count=11)
            running = Service(
                line=line,
                http=http,
                signer=signer,
                recipient_ids=[person["id"] for person in PEOPLE],
                phones=sorted({p["phone"] for p in PEOPLE if p["phone"]}),
                emails=sorted({p["email"] for p in PEOPLE if p["email"]}),
                message_ids=[SEED_MESSAGE],
                sms_sids=[
                    e["provider_message_id"]
                    for e in events
                    if e["channel"] == "sms" and e["provider_message_id"]
                ],
                custom_args=[mail.body["custom_args"] for mail in line.sendgrid.accepted],
            )
            for name, token in (("support", SUPPORT_TOKEN), ("admin", ADMIN_TOKEN)):
                running.sessions[name] = await sign_in(http, token)
            yield running


async def sign_in(http: httpx.AsyncClient, token: str) -> tuple[str, str]:
    """Signs in to the console as a browser does; returns the session's (token, nonce)."""
    http.cookies.clear()
    form = await http.get("/console")
    nonce = form.cookies[NONCE_COOKIE]
    signed_in = await http.post(
        "/console/sign-in", data={"token": token, "csrf": csrf_value(nonce, "")}
    )
    assert signed_in.status_code == 303, signed_in.text
    session = (signed_in.cookies[SESSION_COOKIE], signed_in.cookies[NONCE_COOKIE])
    http.cookies.clear()
    return session


# -- Requests ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One HTTP request as drawn."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...] = ()
    headers: tuple[tuple[str, bytes], ...] = ()
    body: bytes | None = None
    form: tuple[tuple[str, str], ...] | None = None
    files: tuple[tuple[str, tuple[str, bytes, str]], ...] | None = None

    def __repr__(self) -> str:
        parts = [f"{self.method} {self.path!r}"]
        if self.query:
            parts.append(f"query={list(self.query)!r}")
        if self.headers:
            parts.append(f"headers={[(k, preview(v, 120)) for k, v in self.headers]}")
        if self.body is not None:
            parts.append(f"body={preview(self.body, 400)}")
        if self.form is not None:
            parts.append(f"form={[(k, preview(v, 200)) for k, v in self.form]}")
        if self.files:
            parts.append(f"files={[(k, (n, preview(c, 60), t)) for k, (n, c, t) in self.files]}")
        return "Call(" + ", ".join(parts) + ")"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))  # how hypothesis prints a falsifying example


async def send(service: Service, call: Call) -> httpx.Response:
    """Sends the call; any exception the app lets escape propagates (ASGITransport raises
    it), and is a failure of the test."""
    service.http.cookies.clear()  # examples share the client, not a browser's cookie jar
    try:
        request = service.http.build_request(
            call.method,
            call.path,
            params=list(call.query) if call.query else None,
            headers=[(name.encode(), value) for name, value in call.headers],
            content=call.body,
            data=dict(call.form) if call.form is not None else None,
            files=list(call.files) if call.files else None,
        )
    except (httpx.InvalidURL, UnicodeEncodeError):
        reject()  # not a request a client could send
    return await service.http.send(request)


def assert_answered(call: Call, response: httpx.Response, *, errors: str) -> None:
    """No 5xx; a refusal is a 4xx answered as ``errors`` ("json" or "html")."""
    shown = f"{call!r} -> {response.status_code} {preview(response.text, 600)}"
    assert response.status_code < 500, f"server error: {shown}"
    assert response.status_code >= 200, f"unexpected status: {shown}"
    if response.status_code < 400 or call.method == "HEAD":  # HEAD: no body to look at
        return
    kind = response.headers.get("content-type", "")
    if errors == "json":
        assert kind.startswith("application/json"), f"refusal that is not JSON: {shown}"
        body = response.json()
        assert isinstance(body, dict), f"refusal that is not a JSON object: {shown}"
        assert body.get("detail"), f"refusal without detail: {shown}"
    else:
        assert kind.startswith("text/html"), f"refusal that is not a page: {shown}"


def by_the_router(response: httpx.Response) -> bool:
    """A path no route matches, a method the route doesn't take, a body over the limit or
    one that isn't the form it claims to be, is refused by the framework (as JSON) before
    any page is made; every other refusal on the console and the resume link is a page."""
    return response.status_code in (400, 404, 405, 413) and response.headers.get(
        "content-type", ""
    ).startswith("application/json")


def documented_error(call: Call, response: httpx.Response) -> None:
    """README: "Errors are JSON {"error": …, "detail": …}"."""
    if response.status_code < 400 or call.method == "HEAD":
        return
    shown = f"{call!r} -> {response.status_code} {preview(response.text, 300)}"
    try:
        body = response.json()
    except ValueError:
        body = None
    assert isinstance(body, dict), f"refusal that is not a JSON object: {shown}"
    assert isinstance(body.get("error"), str), f"refusal without an error code: {shown}"
    assert "detail" in body, f"refusal without detail: {shown}"


RARELY = st.sampled_from([False] * 9 + [True])
"""True about one time in ten (``st.integers(0, 9) == 0`` would be true far more often:
hypothesis favours the simplest value)."""


def encoded(text: str) -> str:
    return quote(text, safe="")


def segments(*known: list[str]) -> st.SearchStrategy[str]:
    """One path segment: a known value (to reach the code behind "not found"), any text
    percent-encoded, or raw oddities (dot segments, bad escapes, encoded slashes)."""
    choices: list[st.SearchStrategy[str]] = [
        hostile_text(max_size=60).map(encoded),
        st.sampled_from(
            ["", ".", "..", "%", "%zz", "%ff%fe", "%00", "%2F", "a%2Fb", "%C0%AE", "~", "+", "%20"]
        ),
        huge_text(400, at_most=3000).map(encoded),
    ]
    choices += [st.sampled_from(values).map(encoded) for values in known if values]
    return st.one_of(choices)


BOUNDARY_NUMBERS = [
    "9223372036854775808",
    "18446744073709551616",
    "1" + "0" * 30,
    "9" * 5000,
    "9223372036854775807",
    "2147483648",
    "-1",
    "0",
    "1e3",
    "0x10",
    "1.5",
    "NaN",
    "",
    "٣",
    "+1",
    " 7",
]
"""Where number parsing and storage break: 64-bit edges and beyond, sign, radix, unicode
digits. (Hypothesis draws the first entries of a list more often: the likeliest trouble
comes first.)"""


def numbers_as_text() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(BOUNDARY_NUMBERS),
        st.integers(-(2**70), 2**70).map(str),
        st.sampled_from(BOUNDARY_NUMBERS),
        hostile_text(max_size=20),
    )


def queries(*names: str) -> st.SearchStrategy[tuple[tuple[str, str], ...]]:
    """Query parameters: each of the endpoint's own names or not, with odd (mostly numeric)
    values, and unknown names."""
    value = st.one_of(numbers_as_text(), numbers_as_text(), numbers_as_text(), hostile_text())
    pairs: list[st.SearchStrategy[tuple[tuple[str, str], ...]]] = [
        st.one_of(st.tuples(st.tuples(st.just(name), value)), st.just(())) for name in names
    ]
    unknown = st.lists(
        st.tuples(hostile_text(min_size=1, max_size=12), hostile_text(max_size=30)), max_size=2
    ).map(tuple)
    return st.tuples(*pairs, unknown).map(lambda parts: tuple(p for part in parts for p in part))


def header_values() -> st.SearchStrategy[bytes]:
    """What a real HTTP server lets through: printable latin-1 and tabs, no CR, LF or NUL."""
    return st.one_of(
        st.binary(max_size=80).map(
            lambda raw: bytes(b for b in raw if (b >= 0x20 and b != 0x7F) or b == 0x09)
        ),
        hostile_text(max_size=60).map(
            lambda text: (
                text.encode("utf-8").replace(b"\r", b"").replace(b"\n", b"").replace(b"\x00", b"")
            )
        ),
    )


def authorizations() -> st.SearchStrategy[tuple[tuple[str, bytes], ...]]:
    """Mostly a valid token (to reach the handlers), else none, an unknown one, or junk."""
    valid = st.sampled_from([SUPPORT_TOKEN, SUPPORT_TOKEN, ADMIN_TOKEN, ADMIN_TOKEN, MARIA_TOKEN])
    bearer = st.one_of(valid, valid, valid, st.sampled_from(["ntf_unknown", ""])).map(
        lambda token: f"Bearer {token}".encode()
    )
    odd = st.one_of(
        header_values().map(lambda value: b"Bearer " + value),
        header_values(),
        st.sampled_from([b"Basic Zm9vOmJhcg==", b"bearer  " + SUPPORT_TOKEN.encode(), b"Bearer"]),
    )
    header = st.one_of(bearer, bearer, bearer, odd).map(lambda value: (("Authorization", value),))
    return st.one_of(header, header, header, st.just(()))


CONTENT_TYPES = [
    b"application/json",
    b"application/json; charset=utf-16",
    b"application/x-www-form-urlencoded",
    b"multipart/form-data",
    b"multipart/form-data; boundary=",
    b"multipart/form-data; boundary=xyz",
    b'multipart/form-data; boundary="\x7f"',
    b"text/plain",
    b"text/xml",
    b"application/octet-stream",
    b"*/*",
    b"",
]


def extra_headers() -> st.SearchStrategy[tuple[tuple[str, bytes], ...]]:
    name = st.sampled_from(
        ["Content-Type", "X-Request-Id", "Cookie", "Accept", "Content-Encoding", "X-Fuzz"]
    )
    value = st.one_of(st.sampled_from(CONTENT_TYPES), header_values())
    return st.lists(st.tuples(name, value), max_size=3).map(tuple)


HUGE_BODIES = [b"x" * 1_100_000, b"[" * 200_000]
"""Over the body limit, and nested past any parser's depth."""


def bodies() -> st.SearchStrategy[bytes | None]:
    """Raw bodies: none, bytes, JSON of any shape, a form, text; rarely a huge one."""
    return st.one_of(
        st.none(),
        st.binary(max_size=400),
        json_values().map(lambda value: orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)),
        hostile_text(max_size=200).map(str.encode),
        st.sampled_from([b"{", b"[]", b"null", b'{"note": null}', b"a=1&a=2&%zz=%", b"\xff\xfe"]),
        st.sampled_from([False] * 19 + [True]).flatmap(
            lambda huge: st.sampled_from(HUGE_BODIES) if huge else st.binary(max_size=40)
        ),
    )


def form_fields(names: list[str]) -> st.SearchStrategy[tuple[tuple[str, str], ...]]:
    known = st.tuples(st.sampled_from(names), hostile_text(max_size=80))
    unknown = st.tuples(hostile_text(min_size=1, max_size=12), hostile_text(max_size=40))
    return st.lists(st.one_of(known, known, unknown), max_size=8).map(tuple)


# -- The support API ---------------------------------------------------------------------------


@st.composite
def api_calls(draw: st.DrawFn, service: Service) -> Call:
    people = segments(service.recipient_ids)
    addresses = segments(service.emails, service.phones)
    route = draw(st.sampled_from(["recipient", "lookup", "reset", "deliveries", "audit", "other"]))
    method = "GET"
    body: bytes | None = None
    query: tuple[tuple[str, str], ...] = ()
    if route == "recipient":
        path = f"/api/v1/recipients/{draw(people)}"
        query = draw(queries("limit", "offset"))
    elif route == "lookup":
        path = "/api/v1/contact-points"
        lookups = st.tuples(
            st.sampled_from(["email", "phone"]),
            st.one_of(st.sampled_from(service.emails + service.phones), hostile_text()),
        )
        query = draw(st.lists(lookups, max_size=2).map(tuple)) + draw(queries("limit", "offset"))
    elif route == "reset":
        method = "POST"
        channel = draw(st.one_of(st.sampled_from(["email", "sms", "app"]), segments()))
        path = f"/api/v1/contact-points/{channel}/{draw(addresses)}/reset"
        note = st.one_of(hostile_text(), huge_text(2000, at_most=3000), json_values())
        body = draw(
            st.one_of(
                note.map(lambda value: orjson.dumps({"note": value})),
                bodies(),
            )
        )
    elif route == "deliveries":
        path = f"/api/v1/messages/{draw(segments(service.message_ids))}/deliveries"
        query = draw(queries("limit", "offset"))
    elif route == "audit":
        path = "/api/v1/audit"
        query = draw(queries("address", "limit", "offset"))
    else:
        path = "/api/v1/" + "/".join(draw(st.lists(segments(), min_size=0, max_size=4)))
    if draw(RARELY):
        method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"]))
        body = draw(bodies())
    headers = draw(authorizations()) + draw(extra_headers())
    if body is not None and draw(st.booleans()):
        headers += (("Content-Type", b"application/json"),)
    return Call(method, path, query, headers, body)


@pytest.mark.parametrize("service", BACKENDS, indirect=True)
@FUZZ
@given(data=st.data())
async def test_the_support_api_answers_anything_with_a_2xx_or_a_json_4xx(
    service: Service, data: st.DataObject
) -> None:
    call = data.draw(api_calls(service), label="call")
    response = await send(service, call)
    assert_answered(call, response, errors="json")
    if response.status_code < 300 and call.method != "HEAD":
        assert isinstance(response.json(), dict), f"{call!r}: an answer that is not JSON"


# -- Webhooks ----------------------------------------------------------------------------------


def event_values(service: Service) -> st.SearchStrategy[dict[str, Any]]:
    """A SendGrid event: its fields with real or hostile values, and our custom args."""
    names = st.sampled_from(
        [
            "event",
            "email",
            "timestamp",
            "sg_event_id",
            "sg_message_id",
            "type",
            "bounce_classification",
            "reason",
            "status",
            "response",
            "url",
            "notifier_delivery_id",
            "notifier_message_id",
            "notifier_recipient_id",
        ]
    )
    real = st.sampled_from(
        [
            "bounce",
            "blocked",
            "deferred",
            "delivered",
            "dropped",
            "click",
            "spamreport",
            "unsubscribe",
            "Mailbox Unavailable",
            "5.2.2",
            "4.2.2",
            "https://example.org/x",
            *service.emails,
        ]
    )
    boundaries = st.sampled_from(
        [2**62, 2**64 - 1, -(2**63), 2**63 - 1, 10**12, 2**53, 2**31, 0, -1]
    )
    timestamps = st.one_of(
        boundaries,
        boundaries,
        st.just(int(time.time())),
        st.floats(allow_nan=False, allow_infinity=False),
        numbers_as_text(),
    )
    value = st.one_of(real, json_values(max_leaves=3))
    custom = st.sampled_from(service.custom_args or [{}])
    return st.builds(
        lambda custom_args, fields, stamp: custom_args | fields | stamp,
        st.one_of(custom, custom, st.just({})),
        st.dictionaries(names, value, max_size=8),
        st.one_of(
            timestamps.map(lambda stamp: {"timestamp": stamp}),
            timestamps.map(lambda stamp: {"timestamp": stamp}),
            st.just({}),
        ),
    )


@st.composite
def sendgrid_event_calls(draw: st.DrawFn, service: Service) -> Call:
    batch = st.lists(event_values(service), min_size=1, max_size=5).map(orjson.dumps)
    events = draw(st.one_of(batch, batch, batch, bodies().map(lambda body: body or b"")))
    headers: tuple[tuple[str, bytes], ...]
    how = draw(st.sampled_from(["signed", "signed", "signed", "stale", "garbage", "unsigned"]))
    if how in ("signed", "stale"):
        at = int(time.time()) - (0 if how == "signed" else 3600)
        signed = service.signer.sign(events, at)
        headers = tuple((name, value.encode()) for name, value in signed.items())
    elif how == "garbage":
        headers = (
            ("X-Twilio-Email-Event-Webhook-Signature", draw(header_values())),
            ("X-Twilio-Email-Event-Webhook-Timestamp", draw(numbers_as_text()).encode()),
        )
    else:
        headers = ()
    headers += (("Content-Type", b"application/json"),)
    return Call(
        "POST", "/webhooks/sendgrid/events", headers=headers + draw(extra_headers()), body=events
    )


TWILIO_FIELDS = [
    "MessageSid",
    "SmsSid",
    "MessageStatus",
    "ErrorCode",
    "To",
    "From",
    "Body",
    "AccountSid",
    "NumMedia",
    "OptOutType",
]


@st.composite
def twilio_calls(draw: st.DrawFn, service: Service) -> Call:
    inbound = draw(st.booleans())
    path = "/webhooks/twilio/inbound" if inbound else "/webhooks/twilio/status"
    url = INBOUND_TEXT_URL if inbound else STATUS_URL
    real = {
        "MessageSid": st.sampled_from(service.sms_sids or ["SM0"]),
        "MessageStatus": st.sampled_from(
            ["queued", "sent", "delivered", "undelivered", "failed", "read", "DELIVERED"]
        ),
        "ErrorCode": st.sampled_from(["30003", "30005", "21610", "30007", "١٢٣", "9" * 5000]),
        "From": st.sampled_from(service.phones),
        "To": st.sampled_from(service.phones),
        "Body": st.sampled_from(["STOP", "start", "HELP", "stop all", "Sí, gracias", "UNSTOP"]),
    }
    form: dict[str, str] = {}
    for name in TWILIO_FIELDS:
        choice = draw(st.sampled_from(["real", "real", "hostile", "missing"]))
        if choice == "real" and name in real:
            form[name] = draw(real[name])
        elif choice == "hostile" or (choice == "real" and name not in real):
            form[name] = draw(st.one_of(hostile_text(), huge_text(2000, at_most=20_000)))
    if "MessageSid" not in form and draw(st.booleans()):
        form["MessageSid"] = f"SM{uuid.uuid4().hex}"
    form |= dict(draw(form_fields(["AccountSid", "SmsStatus", "ApiVersion"])))
    how = draw(st.sampled_from(["signed", "signed", "signed", "garbage", "unsigned", "raw"]))
    headers: tuple[tuple[str, bytes], ...] = ()
    if how == "signed":
        headers = (
            ("X-Twilio-Signature", twilio_signature(service.twilio_token, url, form).encode()),
        )
    elif how == "garbage":
        headers = (("X-Twilio-Signature", draw(header_values())),)
    if how == "raw":
        return Call(
            "POST",
            path,
            headers=(("Content-Type", draw(st.sampled_from(CONTENT_TYPES))),),
            body=draw(bodies()),
        )
    return Call("POST", path, headers=headers + draw(extra_headers()), form=tuple(form.items()))


INBOUND_EMAIL_FIELDS = [
    "from",
    "to",
    "cc",
    "subject",
    "text",
    "html",
    "envelope",
    "headers",
    "attachments",
    "attachment-info",
    "charsets",
    "SPF",
    "dkim",
]


@st.composite
def inbound_email_calls(draw: st.DrawFn, service: Service) -> Call:
    sender = st.one_of(
        st.sampled_from(service.emails).map(lambda address: f"Someone <{address}>"),
        hostile_text(),
    )
    reply_to = st.one_of(
        st.builds(
            lambda local: f"reply+{local}@reply.springfield.example",
            st.one_of(st.from_regex(r"[a-z0-9]{42}", fullmatch=True), hostile_text(max_size=70)),
        ),
        hostile_text(),
    )
    real = {
        "from": sender,
        "to": reply_to,
        "envelope": st.one_of(
            st.builds(
                lambda to, sent_by: orjson.dumps({"to": [to], "from": sent_by}).decode(),
                reply_to,
                sender,
            ),
            json_values().map(lambda value: orjson.dumps(value).decode()),
            hostile_text(),
        ),
        "headers": st.builds(
            lambda message_id, rest: f"Message-ID: {message_id}\nFrom: x@y.z\n{rest}",
            hostile_text(max_size=100),
            hostile_text(max_size=200),
        ),
        "text": st.one_of(hostile_text(max_size=500), huge_text(10_000, at_most=20_000)),
        "html": st.sampled_from(
            ["<p>Hola</p><blockquote>quoted</blockquote>", "<script>x</script>", "<" * 500]
        ),
    }
    fields: list[tuple[str, str]] = []
    for name in INBOUND_EMAIL_FIELDS:
        choice = draw(st.sampled_from(["real", "real", "hostile", "missing"]))
        if choice == "real" and name in real:
            fields.append((name, draw(real[name])))
        elif choice != "missing":
            fields.append((name, draw(hostile_text(max_size=200))))
    fields += list(draw(form_fields(INBOUND_EMAIL_FIELDS)))
    files = draw(
        st.lists(
            st.tuples(
                st.one_of(st.just("attachment1"), hostile_text(min_size=1, max_size=10)),
                st.tuples(
                    hostile_text(max_size=300),
                    st.binary(max_size=200),
                    st.sampled_from(["application/pdf", "image/png", "", "x/\x00", "text/plain"]),
                ),
            ),
            max_size=3,
        )
    )
    how = draw(st.sampled_from(["path", "path", "basic", "basic", "wrong", "none", "raw"]))
    path = "/webhooks/sendgrid/inbound"
    headers: tuple[tuple[str, bytes], ...] = ()
    if how == "path":
        path += "/" + encoded(INBOUND_EMAIL_SECRET)
    elif how == "basic":
        credentials = base64.b64encode(f"sendgrid:{INBOUND_EMAIL_SECRET}".encode())
        headers = (("Authorization", b"Basic " + credentials),)
    elif how == "wrong":
        path += "/" + draw(segments())
    if how == "raw":
        return Call(
            "POST",
            path + "/" + encoded(INBOUND_EMAIL_SECRET),
            headers=(("Content-Type", draw(st.sampled_from(CONTENT_TYPES))),),
            body=draw(bodies()),
        )
    # Without files httpx would send a urlencoded form; SendGrid always posts multipart.
    multipart = tuple(files) or (("attachment1", ("a.txt", b"hi", "text/plain")),)
    return Call(
        "POST",
        path,
        headers=headers + draw(extra_headers()),
        form=tuple(fields),
        files=None if draw(RARELY) else multipart,
    )


@pytest.mark.parametrize("service", BACKENDS, indirect=True)
@FUZZ
@given(data=st.data())
async def test_the_sendgrid_event_webhook_answers_anything_with_a_2xx_or_a_json_4xx(
    service: Service, data: st.DataObject
) -> None:
    call = data.draw(sendgrid_event_calls(service), label="call")
    assert_answered(call, await send(service, call), errors="json")


@pytest.mark.parametrize("service", BACKENDS, indirect=True)
@FUZZ
@given(data=st.data())
async def test_twilio_webhooks_answer_anything_with_a_2xx_or_a_json_4xx(
    service: Service, data: st.DataObject
) -> None:
    call = data.draw(twilio_calls(service), label="call")
    # Answers are TwiML (text/xml) or 204; refusals JSON.
    assert_answered(call, await send(service, call), errors="json")


@pytest.mark.parametrize("service", BACKENDS, indirect=True)
@settings(FUZZ, max_examples=examples(60))
@given(data=st.data())
async def test_inbound_email_answers_anything_with_a_2xx_or_a_json_4xx(
    service: Service, data: st.DataObject
) -> None:
    call = data.draw(inbound_email_calls(service), label="call")
    assert_answered(call, await send(service, call), errors="json")


# -- The person's resume link --------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@st.composite
def resume_tokens(draw: st.DrawFn, service: Service) -> str:
    """Tokens as the link carries them (hex expiry and address, signed), forged, signed with
    odd addresses and expiries, or anything at all."""
    # notifier signs links only for the addresses it emailed; anyone else can only forge.
    signed_address = st.sampled_from(service.emails)
    address = draw(st.one_of(signed_address, hostile_text()))
    expiry = draw(
        st.one_of(
            st.just(datetime.now(UTC) + timedelta(days=3)),
            st.just(datetime.now(UTC) - timedelta(days=3)),
            st.datetimes(
                min_value=datetime(1970, 1, 2),
                max_value=datetime(9999, 12, 30),
                timezones=st.just(UTC),
            ),
        )
    )
    kind = draw(st.sampled_from(["signed", "signed", "forged", "odd expiry", "anything"]))
    if kind == "signed":
        return make_token(draw(signed_address), expiry, RESUME_SECRET.encode())
    if kind == "forged":
        payload = f"{int(expiry.timestamp()):x}:{address}".encode()
        return f"{b64(payload)}.{b64(draw(st.binary(max_size=16)))}"
    if kind == "odd expiry":
        hex_expiry = draw(
            st.one_of(
                st.integers(0, 2**128).map(lambda number: f"{number:x}"),
                st.sampled_from(["-1", "", "zz", "0x10", "f" * 5000]),
            )
        )
        return f"{b64(f'{hex_expiry}:{address}'.encode())}.{b64(draw(st.binary(max_size=16)))}"
    return draw(
        st.one_of(
            hostile_text(max_size=200),
            st.from_regex(r"[A-Za-z0-9_-]*\.[A-Za-z0-9_.=-]*", fullmatch=True),
        )
    )


@pytest.mark.parametrize("service", BACKENDS, indirect=True)
@settings(FUZZ, max_examples=examples(60))
@given(data=st.data())
async def test_the_resume_link_answers_any_token_with_a_page(
    service: Service, data: st.DataObject
) -> None:
    token = data.draw(resume_tokens(service), label="token")
    call = Call(data.draw(st.sampled_from(["GET", "GET", "HEAD", "POST"])), f"/r/{encoded(token)}")
    response = await send(service, call)
    assert_answered(call, response, errors="json" if by_the_router(response) else "html")


# -- The console -------------------------------------------------------------------------------


@st.composite
def console_calls(draw: st.DrawFn, service: Service) -> Call:
    session = draw(st.sampled_from(["support", "admin", "self-service", "garbage", "none"]))
    cookies: list[tuple[str, str]] = []
    token, nonce = "", ""
    if session in service.sessions:
        token, nonce = service.sessions[session]
    elif session == "self-service":
        token, nonce = MARIA_TOKEN, "n" * 43
    elif session == "garbage":
        token, nonce = draw(hostile_text(max_size=80)), draw(hostile_text(max_size=80))
    if session != "none":
        cookies += [(SESSION_COOKIE, token), (NONCE_COOKIE, nonce)]
    if draw(RARELY):
        cookies.append(("notifier_console_notice", draw(hostile_text(max_size=200))))
    csrf = draw(
        st.one_of(
            st.just(csrf_value(nonce, token)),
            st.just(csrf_value(nonce, "")),
            hostile_text(max_size=140),
        )
    )
    people = segments(service.recipient_ids)
    addresses = segments(service.emails, service.phones)
    route = draw(
        st.sampled_from(
            ["home", "sign-in", "sign-out", "search", "person", "reset", "confirm", "audit", "css"]
        )
    )
    method = "GET"
    query: tuple[tuple[str, str], ...] = ()
    form: tuple[tuple[str, str], ...] | None = None
    note = st.one_of(hostile_text(), huge_text(2000, at_most=2500), st.just("\r\n"))
    if route == "home":
        path = "/console"
    elif route == "sign-in":
        method, path = "POST", "/console/sign-in"
        token_field = st.one_of(st.sampled_from([SUPPORT_TOKEN, MARIA_TOKEN]), hostile_text())
        form = (("token", draw(token_field)), ("csrf", csrf))
    elif route == "sign-out":
        method, path, form = "POST", "/console/sign-out", (("csrf", csrf),)
    elif route == "search":
        path = "/console/search"
        query = draw(queries("q"))
    elif route == "person":
        path = f"/console/recipients/{draw(people)}"
        query = draw(queries("offset"))
    elif route in ("reset", "confirm"):
        method = "POST"
        channel = draw(st.one_of(st.sampled_from(["email", "sms", "app"]), segments()))
        path = f"/console/contact-points/{channel}/{draw(addresses)}/reset"
        if route == "confirm":
            path += "/confirm"
        form = (
            ("csrf", csrf),
            ("note", draw(note)),
            (
                "recipient_id",
                draw(st.one_of(st.sampled_from(service.recipient_ids), hostile_text())),
            ),
        )
    elif route == "audit":
        path = "/console/audit"
        query = draw(queries("offset", "address"))
    else:
        path = "/console/static/console.css"
    if form is not None:
        form += draw(form_fields(["csrf", "note", "token", "recipient_id"]))
    if draw(RARELY):
        method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE"]))
    headers: tuple[tuple[str, bytes], ...] = ()
    if cookies:
        header = "; ".join(f"{name}={value}" for name, value in cookies)
        headers = (("Cookie", header.encode("utf-8").replace(b"\r", b"").replace(b"\n", b"")),)
    return Call(method, path, query, headers + draw(extra_headers()), form=form)


@pytest.mark.parametrize("service", BACKENDS, indirect=True)
@FUZZ
@given(data=st.data())
async def test_the_console_answers_anything_with_a_page_or_a_redirect(
    service: Service, data: st.DataObject
) -> None:
    call = data.draw(console_calls(service), label="call")
    response = await send(service, call)
    assert_answered(call, response, errors="json" if by_the_router(response) else "html")


# -- Numbers past 64 bits ------------------------------------------------------------------------


INTEGERS = st.one_of(
    st.sampled_from([2**63, 2**64, -(2**63) - 1, 2**62, 2**63 - 1, 10**30, -1, 0]),
    st.integers(-(2**80), 2**80),
)
"""Whole numbers where storage and time conversions end (64-bit, time_t, year 9999)."""


NUMBER_PLACES = ["api offset", "console offset", "event timestamp", "link expiry"]


@st.composite
def numeric_calls(draw: st.DrawFn, service: Service, place: str) -> Call:
    """A number where one is taken: a page offset (API and console), a SendGrid event's
    timestamp (signed), a resume link's expiry (unsigned: it is read before the check)."""
    number = draw(INTEGERS)
    if place == "api offset":
        path = draw(
            st.sampled_from(
                [
                    "/api/v1/recipients/guardian-maria",
                    f"/api/v1/messages/{SEED_MESSAGE}/deliveries",
                    "/api/v1/audit",
                    f"/api/v1/contact-points?email={MARIA['email']}",
                ]
            )
        )
        separator = "&" if "?" in path else "?"
        return Call(
            "GET",
            f"{path}{separator}offset={number}",
            headers=(("Authorization", f"Bearer {ADMIN_TOKEN}".encode()),),
        )
    if place == "console offset":
        token, nonce = service.sessions["admin"]
        path = draw(st.sampled_from(["/console/recipients/guardian-maria", "/console/audit"]))
        return Call(
            "GET",
            f"{path}?offset={number}",
            headers=(("Cookie", f"{SESSION_COOKIE}={token}; {NONCE_COOKIE}={nonce}".encode()),),
        )
    if place == "event timestamp":
        event = service.custom_args[0] | {"event": "delivered", "timestamp": number}
        body = json.dumps([event]).encode()  # orjson can't write numbers past 64 bits
        signed = service.signer.sign(body, int(time.time()))
        return Call(
            "POST",
            "/webhooks/sendgrid/events",
            headers=tuple((name, value.encode()) for name, value in signed.items()),
            body=body,
        )
    payload = f"{number:x}:{MARIA['email']}".encode()
    return Call("GET", f"/r/{b64(payload)}.{b64(b'forged')}")


@pytest.mark.parametrize(
    ("service", "place"),
    # A page offset goes to the database; the other numbers never reach it.
    [("sqlite", place) for place in NUMBER_PLACES]
    + [("postgresql", "api offset"), ("postgresql", "console offset")],
    indirect=["service"],
)
@settings(FUZZ, max_examples=examples(25))
@given(data=st.data())
async def test_numbers_past_64_bits_are_refused_not_crashed_on(
    service: Service, place: str, data: st.DataObject
) -> None:
    call = data.draw(numeric_calls(service, place), label="call")
    response = await send(service, call)
    errors = "html" if call.path.startswith(("/console", "/r/")) else "json"
    assert_answered(call, response, errors="json" if by_the_router(response) else errors)


# -- Any path, and the error shape ----------------------------------------------------------------


@st.composite
def any_calls(draw: st.DrawFn, service: Service) -> Call:
    prefix = draw(
        st.sampled_from(
            ["/api/v1", "/api", "/webhooks", "/webhooks/twilio", "/webhooks/sendgrid", ""]
        )
    )
    path = prefix + "/" + "/".join(draw(st.lists(segments(), max_size=3)))
    if draw(st.booleans()):
        path = draw(
            st.sampled_from(["/healthz", "/readyz", "/metrics", "/api/docs", "/api/openapi.json"])
        )
    method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]))
    return Call(
        method,
        path,
        draw(queries()),
        draw(authorizations()) + draw(extra_headers()),
        body=draw(bodies()) if method not in ("GET", "HEAD") else None,
    )


@pytest.mark.parametrize("service", BACKENDS, indirect=True)
@settings(FUZZ, max_examples=examples(60))
@given(data=st.data())
async def test_any_path_and_method_is_answered_without_a_server_error(
    service: Service, data: st.DataObject
) -> None:
    call = data.draw(any_calls(service), label="call")
    response = await send(service, call)
    assert_answered(call, response, errors="json")


@pytest.mark.parametrize("service", ["sqlite"], indirect=True)
@settings(FUZZ, max_examples=examples(60))
@given(data=st.data())
async def test_api_and_webhook_refusals_have_the_documented_error_shape(
    service: Service, data: st.DataObject
) -> None:
    call = data.draw(
        st.one_of(
            api_calls(service),
            any_calls(service).filter(lambda call: call.path.startswith(("/api/v1", "/webhooks"))),
            twilio_calls(service),
            inbound_email_calls(service),
        ),
        label="call",
    )
    response = await send(service, call)
    documented_error(call, response)

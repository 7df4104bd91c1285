"""The support console (/console): its refusals over plain HTTP (the app called over ASGI on a
real container and SQLite store), then the whole support story in headless Chromium, driven
by Playwright against the service served over real HTTP.

The browser test keeps a screenshot of each step under its tmp_path, and also in
NOTIFIER_SCREENSHOTS_DIR when that is set (CI keeps that folder as an artifact).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from playwright.async_api import Page, async_playwright, expect
from pydantic import SecretStr

from notifier.adapters.api_tokens import token_digest
from notifier.bootstrap import Container, open_container
from notifier.config import (
    ApiSettings,
    ApiToken,
    DatabaseSettings,
    SendGridSettings,
    Settings,
)
from notifier.domain.model import (
    Channel,
    ContactPoint,
    ContactStatus,
    DeliveryStatus,
    Reason,
    Route,
)
from notifier.domain.records import AuditEntry
from notifier.entrypoints.http import create_app
from notifier.handlers.contact_points import ContactPointDependencies
from notifier.ports import TransientProviderError
from tests import builders
from tests.conftest import IN_CI
from tests.fakes.sendgrid_server import FakeSendGrid
from tests.fakes.signing import SendGridWebhookSigner
from tests.fakes.suppressions import RecordingSuppressions
from tests.fakes.twilio_server import FakeTwilio
from tests.story import Story
from tests.test_pipeline_kafka import Pipeline, recipient, running_pipeline, send_request

SUPPORT_TOKEN = "ntf_alice-support-console-token"
ADMIN_TOKEN = "ntf_ada-admin-console-token"
SELF_SERVICE_TOKEN = "ntf_maria-self-service-console-token"
TOKENS = [
    ApiToken(name="alice", scope="support", sha256=token_digest(SUPPORT_TOKEN)),
    ApiToken(name="ada", scope="admin", sha256=token_digest(ADMIN_TOKEN)),
    ApiToken(
        name="maria-app",
        scope="self-service",
        sha256=token_digest(SELF_SERVICE_TOKEN),
        recipient_id="guardian-maria",
    ),
]
SESSION_COOKIE = "notifier_console"

MARIA_EMAIL = "maria@example.org"
MARIA_PHONE = "+15555550144"
LUCIA_PHONE = "+15555550188"
# 07:42 in Springfield (America/Chicago, CST after Nov 1, 2026).
FAILING_SINCE = datetime(2026, 11, 3, 13, 42, tzinfo=UTC)
FAILING_BADGE = "failing: mailbox full since Nov 3, 07:42"
FAILING_WHY = "email failing since Nov 3, 07:42 — mailbox full — so sent by text"

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS_VARIABLE = "NOTIFIER_SCREENSHOTS_DIR"


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found is not None, "the page has a form with a CSRF value"
    return found.group(1)


@dataclass
class Console:
    """The app over ASGI, as one browser: httpx keeps its cookies."""

    container: Container
    http: httpx.AsyncClient

    async def sign_in(self, token: str) -> httpx.Response:
        form = await self.http.get("/console")
        return await self.http.post(
            "/console/sign-in", data={"token": token, "csrf": csrf_of(form.text)}
        )

    async def form_csrf(self, path: str = "/console/search") -> str:
        page = await self.http.get(path)
        assert page.status_code == 200, page.text
        return csrf_of(page.text)

    async def email_status(self, address: str = MARIA_EMAIL) -> ContactStatus:
        points = await self.container.store.contact_points.contact_points(
            [(Channel.EMAIL, address)]
        )
        return points[(Channel.EMAIL, address)].status

    async def audit(self) -> list[AuditEntry]:
        return await self.container.store.audit.audit_entries()


@asynccontextmanager
async def console_on(tmp_path: Path, **api: Any) -> AsyncIterator[Console]:
    """The real container (no broker connection needed) on a fresh SQLite store, with Maria
    (email failing, a text sent instead) and Lucía (texted STOP) in the directory."""
    settings = Settings(
        database=DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path}/notifier.db"),
        api=ApiSettings(tokens=TOKENS, **api),
    )
    container = await open_container(settings)
    try:
        await seed(container)
        app = create_app(settings)
        app.state.container = container
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://notifier.test"
        ) as http:
            yield Console(container, http)
    finally:
        await container.close()


async def seed(container: Container) -> None:
    store = container.store
    await store.directory.upsert_district(builders.district())
    await store.directory.upsert_recipient(
        builders.recipient(
            id="guardian-maria",
            display_name="Maria Park",
            first_name="Maria",
            preferred_channel=Channel.EMAIL,
            email=MARIA_EMAIL,
            phone=MARIA_PHONE,
        )
    )
    await store.directory.upsert_recipient(
        builders.recipient(
            id="guardian-lucia",
            display_name="Lucía Park",
            first_name="Lucía",
            email="lucia@example.org",
            phone=LUCIA_PHONE,
        )
    )
    await store.contact_points.set_contact_point(
        ContactPoint(
            Channel.EMAIL, MARIA_EMAIL, ContactStatus.FAILING, Reason.MAILBOX_FULL, FAILING_SINCE
        )
    )
    await store.contact_points.set_contact_point(
        ContactPoint(
            Channel.SMS, LUCIA_PHONE, ContactStatus.OPTED_OUT, Reason.OPTED_OUT, FAILING_SINCE
        )
    )
    await store.ledger.claim_delivery(
        builders.delivery_record(
            recipient_id="guardian-maria",
            channel=Channel.SMS,
            address=MARIA_PHONE,
            status=DeliveryStatus.SENT,
            route=Route.CONTACT_POINT_FAILING,
            fallback_from=Channel.EMAIL,
        )
    )


@pytest.fixture
async def console(tmp_path: Path) -> AsyncIterator[Console]:
    async with console_on(tmp_path) as signed_out:
        yield signed_out


@pytest.fixture
async def support(console: Console) -> Console:
    response = await console.sign_in(SUPPORT_TOKEN)
    assert response.status_code == 303, response.text
    return console


MARIA_RESET = f"/console/contact-points/email/{MARIA_EMAIL}/reset"


async def test_a_wrong_token_gets_the_form_again_with_401_and_no_session(
    console: Console,
) -> None:
    response = await console.sign_in("ntf_not-a-token")

    assert response.status_code == 401
    assert "That token was not recognised" in response.text
    assert 'type="password"' in response.text
    assert SESSION_COOKIE not in console.http.cookies
    assert "ntf_not-a-token" not in response.text, "a token is never echoed into a page"


async def test_a_self_service_token_cannot_sign_in(console: Console) -> None:
    response = await console.sign_in(SELF_SERVICE_TOKEN)

    assert response.status_code == 403
    assert "scope is self-service" in response.text
    assert SESSION_COOKIE not in console.http.cookies


async def test_support_signs_in_with_a_strict_httponly_cookie_and_lands_on_search(
    console: Console,
) -> None:
    response = await console.sign_in(SUPPORT_TOKEN)

    assert response.status_code == 303
    assert response.headers["location"] == "/console/search"
    [session] = [c for c in response.headers.get_list("set-cookie") if SESSION_COOKIE + "=" in c]
    assert "HttpOnly" in session
    assert "SameSite=strict" in session
    assert "Path=/console" in session
    assert "Secure" not in session, "plain HTTP here; Secure over HTTPS (next test)"
    search = await console.http.get("/console/search")
    assert search.status_code == 200
    assert "Signed in as <strong>alice</strong> (support)" in search.text
    assert SUPPORT_TOKEN not in search.text
    assert "default-src 'none'" in search.headers["content-security-policy"]
    assert search.headers["cache-control"] == "no-store"


async def test_the_session_cookie_is_secure_over_https(console: Console) -> None:
    console.http.base_url = httpx.URL("https://notifier.test")
    response = await console.sign_in(ADMIN_TOKEN)

    assert response.status_code == 303
    [session] = [c for c in response.headers.get_list("set-cookie") if SESSION_COOKIE + "=" in c]
    assert "Secure" in session


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/console/search?q=Maria"),
        ("GET", "/console/recipients/guardian-maria"),
        ("GET", "/console/audit"),
        ("POST", MARIA_RESET),
        ("POST", MARIA_RESET + "/confirm"),
    ],
)
async def test_pages_without_a_session_send_the_browser_to_sign_in(
    console: Console, method: str, path: str
) -> None:
    response = await console.http.request(
        method, path, data={"note": "x", "csrf": "0" * 64} if method == "POST" else None
    )

    assert response.status_code == 303
    assert response.headers["location"] == "/console"
    assert await console.email_status() is ContactStatus.FAILING
    assert await console.audit() == []


async def test_a_revoked_token_in_the_cookie_no_longer_works(support: Console) -> None:
    support.container.bearer_verifiers = []  # no verifier accepts the token any more

    response = await support.http.get("/console/search")

    assert response.status_code == 303
    assert response.headers["location"] == "/console"
    assert SESSION_COOKIE not in support.http.cookies, "the browser is told to forget it"


async def test_signing_in_needs_the_form_s_csrf_value(console: Console) -> None:
    await console.http.get("/console")
    response = await console.http.post(
        "/console/sign-in", data={"token": SUPPORT_TOKEN, "csrf": "0" * 64}
    )

    assert response.status_code == 403
    assert SESSION_COOKIE not in console.http.cookies


@pytest.mark.parametrize("csrf", ["missing", "wrong", "from another session"])
async def test_a_reset_without_the_session_s_csrf_value_is_refused_and_changes_nothing(
    support: Console, csrf: str
) -> None:
    stale = await support.form_csrf()
    if csrf == "from another session":
        await support.http.post("/console/sign-out", data={"csrf": stale})
        await support.sign_in(SUPPORT_TOKEN)  # a new sign-in: a new CSRF value
    form = {"note": "called the family", "recipient_id": "guardian-maria"}
    if csrf != "missing":
        form["csrf"] = stale if csrf == "from another session" else "f" * 64

    confirm = await support.http.post(MARIA_RESET + "/confirm", data=form)
    ask = await support.http.post(MARIA_RESET, data=form)

    assert (confirm.status_code, ask.status_code) == (403, 403)
    assert "This form has expired" in confirm.text
    assert await support.email_status() is ContactStatus.FAILING
    assert await support.audit() == []


@pytest.mark.parametrize("step", ["ask", "confirm"])
@pytest.mark.parametrize("note", ["", "   \n  "])
async def test_a_reset_without_a_note_is_refused_and_changes_nothing(
    support: Console, step: str, note: str
) -> None:
    csrf = await support.form_csrf()
    path = MARIA_RESET if step == "ask" else MARIA_RESET + "/confirm"

    response = await support.http.post(
        path, data={"note": note, "csrf": csrf, "recipient_id": "guardian-maria"}
    )

    assert response.status_code == 422
    assert "Write a note" in response.text
    assert 'aria-invalid="true"' in response.text
    assert await support.email_status() is ContactStatus.FAILING
    assert await support.audit() == []


async def test_a_display_name_with_markup_is_shown_as_text(support: Console) -> None:
    await support.container.store.directory.upsert_recipient(
        builders.recipient(
            id="guardian-x",
            display_name='<script>alert("x")</script> Park',
            email="x@example.org",
        )
    )

    found = await support.http.get("/console/search", params={"q": "<script>"})
    person = await support.http.get("/console/recipients/guardian-x")

    for page in (found, person):
        assert page.status_code == 200
        assert "<script>" not in page.text
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; Park" in page.text


async def test_search_finds_people_by_name_part_email_or_phone(support: Console) -> None:
    by_name = await support.http.get("/console/search", params={"q": "mar"})
    by_email = await support.http.get("/console/search", params={"q": "MARIA@example.org"})
    by_phone = await support.http.get("/console/search", params={"q": LUCIA_PHONE})
    nobody = await support.http.get("/console/search", params={"q": "zebra"})

    assert 'href="/console/recipients/guardian-maria">Maria Park</a>' in by_name.text
    assert "Maria Park" in by_email.text
    assert "Lucía Park" in by_phone.text
    assert "Maria Park" not in by_phone.text
    assert "Nobody matches “zebra”" in nobody.text


async def test_the_person_page_shows_badges_the_timeline_and_why(support: Console) -> None:
    maria = await support.http.get("/console/recipients/guardian-maria")
    lucia = await support.http.get("/console/recipients/guardian-lucia")
    missing = await support.http.get("/console/recipients/nobody")

    assert FAILING_BADGE in maria.text
    assert 'class="badge badge-failing"' in maria.text
    assert FAILING_WHY in maria.text
    assert '<th scope="col">Why this channel</th>' in maria.text
    assert "Note for resetting email (required)" in maria.text
    assert 'class="badge badge-opted-out"' in lucia.text
    assert "opted out since Nov 3, 07:42" in lucia.text
    assert "Note for resetting text" not in lucia.text, "support can't lift a STOP: no form"
    assert "Only its owner can turn texts back on" in lucia.text
    assert missing.status_code == 404


async def test_support_resets_a_failing_email_with_a_note_after_confirming(
    support: Console,
) -> None:
    csrf = await support.form_csrf("/console/recipients/guardian-maria")
    form = {"note": "Called Maria: inbox emptied", "csrf": csrf, "recipient_id": "guardian-maria"}

    asked = await support.http.post(MARIA_RESET, data=form)
    assert asked.status_code == 200
    assert "Reset email for Maria Park?" in asked.text
    assert await support.email_status() is ContactStatus.FAILING, "asking changes nothing"

    done = await support.http.post(
        MARIA_RESET + "/confirm", data=form, headers={"X-Request-Id": "req-console-1"}
    )
    assert done.status_code == 303
    assert done.headers["location"] == "/console/recipients/guardian-maria"
    page = await support.http.get(done.headers["location"])
    assert "Email maria@example.org is active again (it was failing)" in page.text
    assert 'class="badge badge-active"' in page.text
    again = await support.http.get(done.headers["location"])
    assert "is active again" not in again.text, "the notice is shown once"

    assert await support.email_status() is ContactStatus.ACTIVE
    [entry] = await support.audit()
    assert (entry.actor, entry.scope, entry.note, entry.request_id) == (
        "alice",
        "support",
        "Called Maria: inbox emptied",
        "req-console-1",
    )
    audit = await support.http.get("/console/audit")
    assert "Called Maria: inbox emptied" in audit.text
    assert "req-console-1" in audit.text


async def test_an_sms_stop_is_not_lifted_by_support(support: Console) -> None:
    csrf = await support.form_csrf()

    response = await support.http.post(
        f"/console/contact-points/sms/{LUCIA_PHONE}/reset/confirm",
        data={"note": "she asked", "csrf": csrf, "recipient_id": "guardian-lucia"},
    )

    assert response.status_code == 409
    assert "only its owner can undo that by texting START" in response.text
    points = await support.container.store.contact_points.contact_points(
        [(Channel.SMS, LUCIA_PHONE)]
    )
    assert points[(Channel.SMS, LUCIA_PHONE)].status is ContactStatus.OPTED_OUT


async def test_a_failure_to_clear_the_provider_suppression_is_reported(support: Console) -> None:
    failing = RecordingSuppressions(
        script=deque(TransientProviderError("sendgrid", "HTTP 503") for _ in range(3))
    )
    follow_up = support.container.follow_up
    support.container.follow_up = replace(
        follow_up,
        contact_points=ContactPointDependencies(
            support.container.store.contact_points,
            support.container.store.audit,
            support.container.store.directory,
            {Channel.EMAIL: failing},
            follow_up.contact_points.clock,
        ),
    )
    csrf = await support.form_csrf()

    done = await support.http.post(
        MARIA_RESET + "/confirm",
        data={"note": "inbox emptied", "csrf": csrf, "recipient_id": "guardian-maria"},
    )
    page = await support.http.get(done.headers["location"])

    assert "the provider&#39;s block list could not be cleared (sendgrid: HTTP 503)" in page.text
    assert 'class="alert alert-warning"' in page.text
    assert await support.email_status() is ContactStatus.ACTIVE


async def test_an_invalid_address_gets_an_html_422(support: Console) -> None:
    csrf = await support.form_csrf()

    response = await support.http.post(
        "/console/contact-points/sms/555-0123/reset", data={"note": "x", "csrf": csrf}
    )

    assert response.status_code == 422
    assert response.headers["content-type"].startswith("text/html")
    assert "E.164" in response.text


async def test_the_audit_log_pages_newest_first(support: Console) -> None:
    for number in range(60):
        await support.container.store.audit.append_audit(
            AuditEntry(
                occurred_at=datetime.now(UTC),
                actor="bob",
                scope="support",
                action="reset_contact_point",
                channel=Channel.EMAIL,
                address=f"a{number}@example.org",
                note=f"note {number}",
                request_id=f"req-{number}",
            )
        )

    first = await support.http.get("/console/audit")
    second = await support.http.get("/console/audit", params={"offset": 50})
    one_address = await support.http.get("/console/audit", params={"address": "A7@example.org"})

    assert "note 59" in first.text
    assert "note 10" in first.text
    assert "note 9<" not in first.text
    assert 'href="/console/audit?offset=50">Older entries</a>' in first.text
    assert "note 9<" in second.text
    assert "note 0<" in second.text
    assert "Newer entries" in second.text
    assert "Older entries" not in second.text
    assert "note 7<" in one_address.text
    assert "note 17" not in one_address.text


async def test_an_admin_may_use_the_console(console: Console) -> None:
    assert (await console.sign_in(ADMIN_TOKEN)).status_code == 303
    assert (await console.http.get("/console/audit")).status_code == 200


async def test_signing_out_forgets_the_token(support: Console) -> None:
    csrf = await support.form_csrf()

    response = await support.http.post("/console/sign-out", data={"csrf": csrf})

    assert response.status_code == 303
    assert SESSION_COOKIE not in support.http.cookies
    assert (await support.http.get("/console/search")).status_code == 303


async def test_console_pages_are_rate_limited_per_principal(tmp_path: Path) -> None:
    async with console_on(tmp_path, rate_limit_per_minute=1, rate_limit_burst=2) as console:
        await console.sign_in(SUPPORT_TOKEN)
        statuses = [(await console.http.get("/console/search")).status_code for _ in range(3)]
        limited = await console.http.get("/console/search")

    assert statuses == [200, 200, 429]
    assert "Too many requests" in limited.text
    assert int(limited.headers["retry-after"]) > 0


# -- the browser story -------------------------------------------------------------------------


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """The app over real HTTP on a free local port, in this event loop."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False)
    )
    task = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        listener.close()


@pytest.fixture
async def story(tmp_path: Path) -> AsyncIterator[Story]:
    signer = SendGridWebhookSigner()

    def configure(settings: Settings, twilio: FakeTwilio, sendgrid: FakeSendGrid) -> Settings:
        return settings.model_copy(
            update={
                "sendgrid": SendGridSettings(
                    api_key=SecretStr(sendgrid.api_key),
                    api_base_url=sendgrid.base_url,
                    webhook_public_key=signer.public_key,
                ),
                "api": ApiSettings(tokens=TOKENS),
            }
        )

    async with running_pipeline(tmp_path, configure) as line:
        app = create_app(line.settings)
        app.state.container = line.container
        async with (
            serving(app) as base_url,
            httpx.AsyncClient(base_url=base_url) as http,
            AsyncExitStack() as lifespans,
        ):
            yield Story(line, http, signer, lifespans)


async def a_guardian_whose_email_is_failing(line: Pipeline, story: Story) -> None:
    """Maria's first message bounces (mailbox full) and goes by text; her next one goes
    straight to text."""
    maria = recipient(
        "guardian-maria",
        "Maria",
        "guardian",
        preferred_channel="email",
        email=MARIA_EMAIL,
        phone=MARIA_PHONE,
    )
    await line.load_directory([maria])
    await line.send(send_request("msg-field-trip", ["guardian-maria"]))
    await line.final_events("msg-field-trip", 2)
    assert (await story.sendgrid_events([story.bounce()])).status_code == 200
    await line.final_events("msg-field-trip", 3)
    await line.send(send_request("msg-picture-day", ["guardian-maria"], body="Picture day!"))
    await line.final_events("msg-picture-day", 2)


Shoot = Callable[[Page, str], Awaitable[None]]


@pytest.fixture
def shoot(tmp_path: Path) -> Shoot:
    folders = [tmp_path / "screenshots"]
    if os.environ.get(SCREENSHOTS_VARIABLE):
        folders.append(Path(os.environ[SCREENSHOTS_VARIABLE]))
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)

    async def screenshot(page: Page, name: str) -> None:
        first = folders[0] / f"{name}.png"
        await page.screenshot(path=first, full_page=True)
        for folder in folders[1:]:
            shutil.copyfile(first, folder / first.name)

    return screenshot


def chromium_or_skip() -> str:
    if not Path(CHROMIUM).exists() and not IN_CI:
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium); CI installs it")
    return CHROMIUM


async def focus_by_tabbing(page: Page, label: str, *, most: int = 40) -> None:
    """Tab through the page, as a keyboard user would, until the field labelled so has focus."""
    target = page.get_by_label(label)
    for _ in range(most):
        await page.keyboard.press("Tab")
        if await target.evaluate("element => element === document.activeElement"):
            return
    raise AssertionError(f"{label!r} was not reached with Tab")


@pytest.mark.kafka
async def test_support_finds_a_failing_guardian_resets_her_email_and_finds_it_audited(
    story: Story, shoot: Shoot
) -> None:
    executable = chromium_or_skip()
    line = story.line
    await a_guardian_whose_email_is_failing(line, story)
    base_url = str(story.http.base_url).rstrip("/")
    note = "Called Maria on Nov 4: she emptied her inbox."

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 800})

            await page.goto(f"{base_url}/console")
            await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
            await shoot(page, "01-sign-in")
            await page.get_by_label("Bearer token").fill(SUPPORT_TOKEN)
            await page.get_by_role("button", name="Sign in").click()

            await expect(page.get_by_role("heading", name="Find a person")).to_be_visible()
            await page.get_by_label("Name, email or phone").fill("maria")
            await page.get_by_label("Name, email or phone").press("Enter")
            results = page.get_by_role("table")
            await expect(results.get_by_role("link", name="Maria Park")).to_be_visible()
            await shoot(page, "02-search")
            await results.get_by_role("link", name="Maria Park").click()

            await expect(page.get_by_role("heading", name="Maria Park", level=1)).to_be_visible()
            email = page.get_by_role("listitem").filter(has_text=MARIA_EMAIL)
            await expect(email.get_by_text("failing: mailbox full since")).to_be_visible()
            timeline = page.get_by_role("table")
            fallback = (
                timeline.get_by_role("row")
                .filter(has_text="msg-field-trip")
                .filter(has_text="Text (SMS)")
            )
            await expect(fallback).to_contain_text("email bounced (mailbox full) — so sent by text")
            straight = (
                timeline.get_by_role("row")
                .filter(has_text="msg-picture-day")
                .filter(has_text="Text (SMS)")
            )
            await expect(straight).to_contain_text("— mailbox full — so sent by text")
            await expect(straight).to_contain_text("email failing since")
            await shoot(page, "03-person-failing")

            # Keyboard only: Tab to the note, type it, Tab to the button, Enter.
            await focus_by_tabbing(page, "Note for resetting email (required)")
            await page.keyboard.type(note)
            await page.keyboard.press("Tab")
            reset_button = page.get_by_role("button", name="Reset email…")
            await expect(reset_button).to_be_focused()
            await shoot(page, "04-note")
            await page.keyboard.press("Enter")

            await expect(
                page.get_by_role("heading", name="Reset email for Maria Park?")
            ).to_be_visible()
            await expect(page.get_by_text(note)).to_be_visible()
            await shoot(page, "05-confirm")
            await page.get_by_role("button", name="Yes, reset email").click()

            await expect(page.get_by_role("status")).to_contain_text(
                f"Email {MARIA_EMAIL} is active again"
            )
            email = page.get_by_role("listitem").filter(has_text=MARIA_EMAIL)
            await expect(email.get_by_text("active", exact=True)).to_be_visible()
            await expect(email).not_to_contain_text("failing")
            await expect(page.get_by_role("button", name="Reset email…")).to_have_count(0)
            await shoot(page, "06-person-active")

            await page.get_by_role("link", name="Audit log").click()
            entry = page.get_by_role("row").filter(has_text=note)
            await expect(entry).to_contain_text("alice")
            await expect(entry).to_contain_text("support")
            await expect(entry).to_contain_text(MARIA_EMAIL)
            await shoot(page, "07-audit")

            await page.get_by_role("button", name="Sign out").click()
            await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        finally:
            await browser.close()

    assert line.container is not None
    points = await line.container.store.contact_points.contact_points(
        [(Channel.EMAIL, MARIA_EMAIL)]
    )
    assert points[(Channel.EMAIL, MARIA_EMAIL)].status is ContactStatus.ACTIVE
    [delete] = [r for r in line.sendgrid.received if r.method == "DELETE"]
    assert delete.path == f"/v3/suppression/bounces/{MARIA_EMAIL}"

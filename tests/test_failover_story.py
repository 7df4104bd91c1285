"""Bounce, failover and revert end to end: the real broker, the real HTTP app (webhooks and
API, called over ASGI), fake Twilio and SendGrid servers, webhooks signed like the vendors."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import pytest

from notifier.domain.model import Channel, ContactStatus
from notifier.domain.records import AuditEntry
from notifier.domain.resume_links import make_token
from tests.fakes.signing import SendGridWebhookSigner, twilio_signature
from tests.story import (
    INBOUND_URL,
    MARIA_EMAIL,
    MARIA_PHONE,
    MARIA_TOKEN,
    SUPPORT_TOKEN,
    Story,
    running_story,
)
from tests.test_pipeline_kafka import recipient, send_request

pytestmark = pytest.mark.kafka


@pytest.fixture
async def story(tmp_path: Path) -> AsyncIterator[Story]:
    async with running_story(tmp_path) as story:
        yield story


MARIA = recipient(
    "guardian-maria",
    "Maria",
    "guardian",
    language="es",
    preferred_channel="email",
    email=MARIA_EMAIL,
    phone=MARIA_PHONE,
)


async def test_full_inbox_fails_over_to_sms_until_support_resets_the_email(story: Story) -> None:
    line = story.line
    await line.load_directory([MARIA])

    await line.send(send_request("msg-1", ["guardian-maria"]))
    [first] = [e for e in await line.final_events("msg-1", 2) if e["channel"] == "email"]
    assert (first["status"], first["route"]) == ("sent", "preferred")

    response = await story.sendgrid_events([story.bounce()])
    assert response.status_code == 200, response.text

    final = {e["channel"]: e for e in await line.final_events("msg-1", 3)}
    assert (final["email"]["status"], final["email"]["reason"]) == ("bounced", "mailbox_full")
    sms = final["sms"]
    assert (sms["status"], sms["fallback_from"], sms["route"]) == (
        "sent",
        "email",
        "failover_bounce",
    )
    [text] = [r.form["Body"] for r in line.twilio.received]
    assert text.startswith(
        "Para Maria: Ms. Rivera: Los formularios de la excursión vencen el viernes."
    ), "the same message, labelled and in her language"
    assert "https://notifier.example/r/" in text, "the first fallback text carries the resume link"

    # While the inbox is failing, the next message goes straight to SMS.
    await line.send(send_request("msg-2", ["guardian-maria"]))
    routed = {e["channel"]: e for e in await line.final_events("msg-2", 2)}
    assert (routed["sms"]["route"], routed["sms"]["fallback_from"]) == (
        "contact_point_failing",
        "email",
    )
    assert len(line.sendgrid.accepted) == 1, "no email is attempted while the address is failing"
    assert "/r/" not in line.twilio.received[-1].form["Body"], "the link comes only once"

    response = await story.reset("email", MARIA_EMAIL)
    assert response.status_code == 200, response.text
    assert response.json()["previous"]["status"] == "failing"
    assert response.json()["provider_suppression"]["outcome"] == "removed"
    [delete] = [r for r in line.sendgrid.received if r.method == "DELETE"]
    assert delete.path == "/v3/suppression/bounces/maria@example.org"

    await line.send(send_request("msg-3", ["guardian-maria"]))
    back = {e["channel"]: e for e in await line.final_events("msg-3", 2)}
    assert (back["email"]["status"], back["email"]["route"]) == ("sent", "preferred")
    assert len(line.twilio.received) == 2


async def test_one_bounce_fails_over_everyone_sharing_the_inbox(story: Story) -> None:
    line = story.line
    shared = "park.family@example.org"
    dennis = recipient(
        "guardian-dennis",
        "Dennis",
        "guardian",
        preferred_channel="email",
        email=shared,
        phone="+15555550123",
    )
    maya = recipient(
        "guardian-maya",
        "Maya",
        "guardian",
        preferred_channel="email",
        email=shared,
        phone="+15555550124",
    )
    await line.load_directory([dennis, maya])

    await line.send(send_request("msg-shared", ["guardian-dennis", "guardian-maya"]))
    await line.final_events("msg-shared", 4)
    response = await story.sendgrid_events([story.bounce(0)])  # one bounce, for one of them
    assert response.status_code == 200

    final = {(e["recipient_id"], e["channel"]): e for e in await line.final_events("msg-shared", 6)}
    assert final[("guardian-dennis", "sms")]["status"] == "sent"
    assert final[("guardian-maya", "sms")]["status"] == "sent"
    assert sorted(r.form["Body"][:11] for r in line.twilio.received) == [
        "For Dennis:",
        "For Maya: M",
    ]

    await line.send(send_request("msg-shared-2", ["guardian-dennis", "guardian-maya"]))
    later = await line.final_events("msg-shared-2", 4)
    assert {e["channel"] for e in later} == {"sms", "app"}


@pytest.mark.parametrize(
    "forgery", ["unsigned", "wrong key", "tampered", "stale", "from the future"]
)
async def test_forged_or_stale_sendgrid_webhooks_are_refused_and_change_nothing(
    story: Story, forgery: str
) -> None:
    line = story.line
    await line.load_directory([MARIA])
    await line.send(send_request("msg-forged", ["guardian-maria"]))
    await line.final_events("msg-forged", 2)
    body = orjson.dumps([story.bounce()])
    now = int(time.time())
    headers = {
        "unsigned": {},
        "wrong key": SendGridWebhookSigner().sign(body, now),
        "tampered": story.signer.sign(body.replace(b"552", b"553"), now),
        "stale": story.signer.sign(body, now - 3600),
        "from the future": story.signer.sign(body, now + 3600),
    }[forgery]

    response = await story.http.post("/webhooks/sendgrid/events", content=body, headers=headers)

    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"
    await asyncio.sleep(0.3)
    assert line.twilio.received == []
    assert line.container is not None
    points = await line.container.store.contact_points.contact_points(
        [(Channel.EMAIL, MARIA_EMAIL)]
    )
    assert points[(Channel.EMAIL, MARIA_EMAIL)].status is ContactStatus.ACTIVE


async def test_a_replayed_webhook_batch_is_ignored(story: Story) -> None:
    line = story.line
    await line.load_directory([MARIA])
    await line.send(send_request("msg-replayed", ["guardian-maria"]))
    await line.final_events("msg-replayed", 2)
    bounce = story.bounce()

    assert (await story.sendgrid_events([bounce])).json()["outcomes"] == {"applied": 1}
    await line.final_events("msg-replayed", 3)
    replay = await story.sendgrid_events([bounce])

    assert replay.status_code == 200
    assert replay.json()["outcomes"] == {"repeated": 1}
    assert len(line.twilio.received) == 1


async def test_stop_marks_the_number_opted_out_and_later_texts_go_by_email(story: Story) -> None:
    line = story.line
    lucia = recipient(
        "guardian-lucia",
        "Lucía",
        "guardian",
        language="es",
        phone="+15555550188",
        email="lucia@example.org",
    )
    await line.load_directory([lucia])
    await line.send(send_request("msg-before-stop", ["guardian-lucia"]))
    [sent] = [e for e in await line.final_events("msg-before-stop", 2) if e["channel"] == "sms"]

    form = {
        "MessageSid": sent["provider_message_id"],
        "MessageStatus": "undelivered",
        "ErrorCode": "21610",
        "To": "+15555550188",
        "From": "+15555550100",
        "AccountSid": line.twilio.account_sid,
    }
    response = await story.twilio_status(form)
    assert response.status_code == 204, response.text

    after_stop = {e["channel"]: e for e in await line.final_events("msg-before-stop", 3)}
    assert (after_stop["sms"]["status"], after_stop["sms"]["reason"]) == ("failed", "opted_out")
    assert after_stop["email"]["route"] == "failover_rejected"

    await line.send(send_request("msg-after-stop", ["guardian-lucia"]))
    later = {e["channel"]: e for e in await line.final_events("msg-after-stop", 3)}
    assert (later["sms"]["status"], later["sms"]["reason"]) == ("suppressed", "opted_out")
    assert (later["email"]["status"], later["email"]["route"]) == ("sent", "contact_point_failing")
    assert len(line.twilio.received) == 1, "no text after STOP"

    refused = await story.reset("sms", "+15555550188")
    assert refused.status_code == 409, "only the person's START lifts a STOP"


async def test_an_unsigned_twilio_callback_is_refused(story: Story) -> None:
    response = await story.http.post(
        "/webhooks/twilio/status", data={"MessageSid": "SM1", "MessageStatus": "delivered"}
    )
    assert response.status_code == 403


async def test_an_email_deferred_too_long_fails_over_even_across_a_restart(story: Story) -> None:
    line = story.line
    await line.load_directory([MARIA])
    await line.send(send_request("msg-deferred", ["guardian-maria"]))
    await line.final_events("msg-deferred", 2)
    deferred = story.bounce(
        event="deferred",
        response="452 4.2.2 Mailbox full",
        attempt="1",
    )
    for key in ("type", "bounce_classification", "reason", "status"):
        deferred.pop(key)
    assert (await story.sendgrid_events([deferred])).status_code == 200

    await line.stop_service()  # the timer must not live only in memory
    await asyncio.sleep(2.2)  # past overdue_seconds=2
    await story.restart()

    final = {e["channel"]: e for e in await line.final_events("msg-deferred", 3)}
    assert (final["email"]["status"], final["email"]["reason"]) == ("failed", "deferred_too_long")
    assert (final["sms"]["status"], final["sms"]["route"]) == ("sent", "failover_deferred_too_long")


async def test_the_api_refuses_a_reset_without_a_valid_token(story: Story) -> None:
    anonymous = await story.http.post(
        f"/api/v1/contact-points/email/{MARIA_EMAIL}/reset", json={"note": "x"}
    )
    wrong = await story.http.post(
        f"/api/v1/contact-points/email/{MARIA_EMAIL}/reset",
        json={"note": "x"},
        headers={"Authorization": "Bearer not-a-token"},
    )
    bad_address = await story.reset("sms", "555-0123")
    no_note = await story.http.post(
        f"/api/v1/contact-points/email/{MARIA_EMAIL}/reset",
        json={"note": ""},
        headers={"Authorization": f"Bearer {SUPPORT_TOKEN}"},
    )

    assert (anonymous.status_code, anonymous.json()["error"]) == (401, "unauthorized")
    assert wrong.status_code == 401
    assert bad_address.status_code == 422
    assert no_note.status_code == 422


async def test_a_self_service_token_resets_only_its_own_addresses(story: Story) -> None:
    line = story.line
    other = recipient("guardian-dennis", "Dennis", "guardian", email="dennis@example.org")
    await line.load_directory([MARIA, other])

    async def reset_as_maria(address: str) -> httpx.Response:
        return await story.http.post(
            f"/api/v1/contact-points/email/{address}/reset",
            json={"note": "I emptied my inbox"},
            headers={"Authorization": f"Bearer {MARIA_TOKEN}"},
        )

    own = await reset_as_maria(MARIA_EMAIL)
    someone_elses = await reset_as_maria("dennis@example.org")

    assert own.status_code == 200, own.text
    assert someone_elses.status_code == 403
    assert line.container is not None
    [entry] = [
        e for e in await line.container.store.audit.audit_entries() if e.address == MARIA_EMAIL
    ]
    assert (entry.actor, entry.scope, entry.note) == (
        "maria-app",
        "self-service",
        "I emptied my inbox",
    )


async def test_texting_stop_opts_the_number_out_and_start_lifts_it(story: Story) -> None:
    line = story.line
    lucia = recipient(
        "guardian-lucia", "Lucía", "guardian", phone="+15555550188", email="lucia@example.org"
    )
    await line.load_directory([lucia])

    async def text(body: str) -> httpx.Response:
        form = {
            "MessageSid": f"SM{uuid.uuid4().hex}",
            "From": "+15555550188",
            "To": "+15555550100",
            "Body": body,
            "AccountSid": line.twilio.account_sid,
        }
        signature = twilio_signature(line.twilio.auth_token, INBOUND_URL, form)
        return await story.http.post(
            "/webhooks/twilio/inbound", data=form, headers={"X-Twilio-Signature": signature}
        )

    stop = await text(" Stop ")
    assert stop.status_code == 200
    assert stop.headers["content-type"].startswith("text/xml")
    assert "<Response>" in stop.text
    await line.send(send_request("msg-after-texted-stop", ["guardian-lucia"]))
    after_stop = {e["channel"]: e for e in await line.final_events("msg-after-texted-stop", 3)}
    assert after_stop["sms"]["status"] == "suppressed"
    assert after_stop["email"]["status"] == "sent"

    assert (await text("START")).status_code == 200
    await line.send(send_request("msg-after-start", ["guardian-lucia"]))
    after_start = {e["channel"]: e for e in await line.final_events("msg-after-start", 2)}
    assert (after_start["sms"]["status"], after_start["sms"]["route"]) == ("sent", "role_default")

    forged = await story.http.post(
        "/webhooks/twilio/inbound",
        data={"MessageSid": "SM1", "From": "+15555550188", "Body": "STOP"},
        headers={"X-Twilio-Signature": "forged"},
    )
    assert forged.status_code == 403


# -- The person's resume link ------------------------------------------------------------------
# A link is opened by more than its owner: messaging apps, carrier URL scanners and mail
# security gateways fetch it for a preview. Opening it only asks; the button (a POST) resets.

PREVIEW_AGENTS = [
    "WhatsApp/2.23.20.0 A",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "Mozilla/5.0 (compatible; Slackbot-LinkExpanding 1.0; +https://api.slack.com/robots)",
]
ASKS_IN_SPANISH = "¿Quiere volver a recibir los mensajes por correo en"
THANKS_IN_SPANISH = "Gracias. Los mensajes volverán a llegar a"
UNSUBSCRIBED_IN_SPANISH = "se dio de baja, por lo que este enlace no vuelve a activar el correo"


async def resume_link_while_failing(story: Story) -> str:
    """Maria's inbox is full: the first fallback text carries her resume link (its path)."""
    line = story.line
    await line.load_directory([MARIA])
    await line.send(send_request("msg-link", ["guardian-maria"]))
    await line.final_events("msg-link", 2)
    await story.sendgrid_events([story.bounce()])
    await line.final_events("msg-link", 3)
    [body] = [r.form["Body"] for r in line.twilio.received]
    link = body[body.index("https://notifier.example/r/") :].split()[0]
    return link.removeprefix("https://notifier.example")


async def maria_email(story: Story) -> ContactStatus:
    assert story.line.container is not None
    points = await story.line.container.store.contact_points.contact_points(
        [(Channel.EMAIL, MARIA_EMAIL)]
    )
    return points[(Channel.EMAIL, MARIA_EMAIL)].status


async def maria_audit(story: Story) -> list[AuditEntry]:
    assert story.line.container is not None
    return [
        e
        for e in await story.line.container.store.audit.audit_entries()
        if e.address == MARIA_EMAIL
    ]


def suppression_deletes(story: Story) -> list[str]:
    return [r.path for r in story.line.sendgrid.received if r.method == "DELETE"]


async def test_opening_the_resume_link_asks_in_her_language_and_changes_nothing(
    story: Story,
) -> None:
    path = await resume_link_while_failing(story)

    opened = await story.http.get(path)
    previews = [
        await story.http.get(path, headers={"User-Agent": agent}) for agent in PREVIEW_AGENTS
    ]
    head = await story.http.head(path)

    assert await maria_email(story) is ContactStatus.FAILING
    assert await maria_audit(story) == []
    assert suppression_deletes(story) == []
    assert opened.status_code == 200, opened.text
    assert opened.headers["content-type"].startswith("text/html")
    assert '<html lang="es" dir="ltr">' in opened.text
    assert ASKS_IN_SPANISH in opened.text
    assert MARIA_EMAIL in opened.text
    assert '<form method="post">' in opened.text, "the button posts back to the link"
    assert '<button type="submit">' in opened.text
    assert [preview.text for preview in previews] == [opened.text] * len(PREVIEW_AGENTS)
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-type"] == opened.headers["content-type"]
    assert opened.headers["Referrer-Policy"] == "no-referrer", "the token stays in the link"


async def test_the_button_turns_email_back_on_once_and_pressing_it_again_changes_nothing(
    story: Story,
) -> None:
    path = await resume_link_while_failing(story)
    tampered = path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB")

    refused = await story.http.post(tampered)
    pressed = await story.http.post(path)
    pressed_again = await story.http.post(path)

    assert refused.status_code == 400
    assert pressed.status_code == 200, pressed.text
    assert THANKS_IN_SPANISH in pressed.text
    assert MARIA_EMAIL in pressed.text
    assert "<form" not in pressed.text
    assert (pressed_again.status_code, pressed_again.text) == (200, pressed.text)
    assert await maria_email(story) is ContactStatus.ACTIVE
    assert suppression_deletes(story) == ["/v3/suppression/bounces/maria@example.org"]
    [entry] = await maria_audit(story)
    assert (entry.actor, entry.scope, entry.action) == (
        "person",
        "resume link",
        "reset_contact_point",
    )
    assert entry.outcome is not None
    assert entry.outcome.startswith("failing -> active")

    await story.line.send(send_request("msg-after-link", ["guardian-maria"]))
    back = {e["channel"]: e for e in await story.line.final_events("msg-after-link", 2)}
    assert (back["email"]["status"], back["email"]["route"]) == ("sent", "preferred")


async def test_the_resume_link_does_not_undo_an_unsubscribe(story: Story) -> None:
    path = await resume_link_while_failing(story)
    unsubscribe = story.bounce(event="unsubscribe")
    for key in ("type", "bounce_classification", "reason", "status"):
        unsubscribe.pop(key)
    assert (await story.sendgrid_events([unsubscribe])).status_code == 200
    assert await maria_email(story) is ContactStatus.OPTED_OUT
    audited = await maria_audit(story)

    opened = await story.http.get(path)
    pressed = await story.http.post(path)

    assert opened.status_code == 200
    assert UNSUBSCRIBED_IN_SPANISH in opened.text
    assert "<form" not in opened.text, "no button to press"
    assert pressed.status_code == 409
    assert UNSUBSCRIBED_IN_SPANISH in pressed.text
    assert MARIA_EMAIL in pressed.text
    assert await maria_email(story) is ContactStatus.OPTED_OUT
    assert await maria_audit(story) == audited
    assert suppression_deletes(story) == []


@pytest.mark.parametrize(
    ("language", "html", "asks"),
    [
        ("es", '<html lang="es" dir="ltr">', ASKS_IN_SPANISH),
        ("ar", '<html lang="ar" dir="rtl">', "هل تريد تلقي الرسائل عبر البريد الإلكتروني على"),
        ("ko", '<html lang="en" dir="ltr">', "Get messages by email at"),  # not offered here
        (None, '<html lang="en" dir="ltr">', "Get messages by email at"),
    ],
    ids=["spanish", "arabic", "korean, which the district does not offer", "no language"],
)
async def test_the_resume_link_speaks_the_language_of_whoever_uses_the_address(
    story: Story, language: str | None, html: str, asks: str
) -> None:
    await story.line.load_directory([MARIA | {"language": language}])
    token = make_token(MARIA_EMAIL, datetime.now(UTC) + timedelta(hours=1), b"resume-secret")

    page = await story.http.get(f"/r/{token}")

    assert page.status_code == 200, page.text
    assert html in page.text
    assert asks in page.text


async def test_the_resume_page_escapes_the_address_it_names(story: Story) -> None:
    hostile = '"><script>alert(1)</script>@example.org'
    token = make_token(hostile, datetime.now(UTC) + timedelta(hours=1), b"resume-secret")

    page = await story.http.get(f"/r/{token}")

    assert page.status_code == 200, page.text
    assert "<script>" not in page.text
    assert "&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;@example.org" in page.text

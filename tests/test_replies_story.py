"""Replies by text and email reaching the conversation, end to end: the real broker, the
HTTP app over ASGI, fake Twilio, SendGrid and DeepL servers, inbound webhooks signed or
authenticated like the vendors'."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.fakes.deepl_server import FakeDeepL
from tests.story import INBOUND_EMAIL_SECRET, Story, running_story
from tests.test_pipeline_kafka import (
    WAIT_SECONDS,
    Topic,
    _reader,
    conversation_state,
    recipient,
    send_request,
)

pytestmark = pytest.mark.kafka

LUCIA_PHONE = "+15555550188"
ANA_EMAIL = "ana@springfield.example"
LUCIA = recipient("guardian-lucia", "Lucía", "guardian", language="es", phone=LUCIA_PHONE)
ANA = recipient("staff-ana", "Ana", "staff", preferred_channel="email", email=ANA_EMAIL)

QUOTED_EMAIL_REPLY = """Yes, I can chaperone on Friday.

Thanks,
Ana

On Sat, Nov 28, 2026 at 9:00 AM Springfield Schools <{reply_to}> wrote:
> Hello Ana,
>
> Ms. Rivera wrote:
>
> Field trip forms are due Friday.
"""


@pytest.fixture
async def story(tmp_path: Path) -> AsyncIterator[Story]:
    async with running_story(tmp_path) as story:
        yield story


@pytest.fixture
async def replies(story: Story) -> AsyncIterator[Topic]:
    kafka = story.line.settings.kafka
    topic = await _reader(kafka.replies_topic, kafka.partitions)
    try:
        yield topic
    finally:
        await topic.consumer.stop()


async def _published(replies: Topic, count: int) -> list[dict[str, Any]]:
    """The replies on the topic once ``count`` arrived — and no more turned up after."""
    await replies.wait_for(lambda records: len(records) >= count, f"{count} replies")
    records = await replies.settle()
    assert len(records) == count, [orjson.loads(r.value) for r in records]
    return [orjson.loads(r.value) for r in records]


async def _notified(story: Story, message_id: str, recipients: list[str], deliveries: int) -> None:
    await story.line.send(send_request(message_id, recipients))
    await story.line.final_events(message_id, deliveries)


def _reply_to(story: Story, to: str) -> str:
    [mail] = [
        m
        for m in story.line.sendgrid.accepted
        if m.body["personalizations"][0]["to"][0]["email"] == to
    ]
    address: str = mail.body["reply_to"]["email"]
    return address


async def test_a_spanish_text_reply_reaches_the_conversation_once_with_author_and_language(
    story: Story, replies: Topic
) -> None:
    await story.line.load_directory([LUCIA])
    await _notified(story, "msg-question", ["guardian-lucia"], 2)

    for _ in range(3):  # Twilio retrying the webhook
        response = await story.text_from(LUCIA_PHONE, "Sí, la firmo mañana.", "SMreply1")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/xml")
    stranger = await story.text_from("+15555550999", "Who is this?")  # nobody we texted
    assert "<Message>" not in stranger.text, "unknown numbers get no answer"

    [reply] = await _published(replies, 1)
    assert reply["schema"] == "reply/1"
    assert (reply["conversation_id"], reply["author_recipient_ids"], reply["authors_certain"]) == (
        "conv-77",
        ["guardian-lucia"],
        True,
    )
    assert (reply["channel"], reply["text"], reply["language"]) == (
        "sms",
        "Sí, la firmo mañana.",
        "es",
    )
    assert (reply["provider"], reply["provider_message_id"]) == ("twilio", "SMreply1")
    [record] = replies.records
    assert record.key == b"conv-77"


async def test_an_email_reply_publishes_only_the_new_text_and_references_its_attachment(
    story: Story, replies: Topic
) -> None:
    await story.line.load_directory([ANA])
    await _notified(story, "msg-trip", ["staff-ana"], 2)
    reply_to = _reply_to(story, ANA_EMAIL)
    assert reply_to.startswith("reply+")
    assert reply_to.endswith("@reply.springfield.example")
    assert len(reply_to.split("@")[0]) <= 64, "a local part longer than 64 is not an address"
    [mail] = story.line.sendgrid.accepted
    assert "You can also answer by replying to this email." in mail.body["content"][0]["value"]

    for _ in range(3):  # SendGrid retrying the post
        response = await story.email_reply(
            sender=ANA_EMAIL,
            to=reply_to,
            text=QUOTED_EMAIL_REPLY.format(reply_to=reply_to),
            message_id="<reply-1@springfield.example>",
            files=[("permission-slip.pdf", "application/pdf", b"%PDF-1.4 " + b"x" * 991)],
        )
        assert response.status_code == 200, response.text

    [reply] = await _published(replies, 1)
    assert (reply["channel"], reply["text"], reply["language"]) == (
        "email",
        "Yes, I can chaperone on Friday.",
        "en",
    )
    assert (reply["conversation_id"], reply["author_recipient_ids"], reply["authors_certain"]) == (
        "conv-77",
        ["staff-ana"],
        True,
    )
    assert reply["attachments"] == [
        {"filename": "permission-slip.pdf", "content_type": "application/pdf", "size_bytes": 1000}
    ]
    assert reply["provider_message_id"] == "<reply-1@springfield.example>"


async def test_a_forwarded_email_answered_by_someone_else_is_not_certain_of_its_author(
    story: Story, replies: Topic
) -> None:
    await story.line.load_directory([ANA])
    await _notified(story, "msg-trip", ["staff-ana"], 2)
    reply_to = _reply_to(story, ANA_EMAIL)

    await story.email_reply(sender="someone.else@example.org", to=reply_to, text="I can help too.")

    [reply] = await _published(replies, 1)
    assert (reply["author_recipient_ids"], reply["authors_certain"]) == (["staff-ana"], False)


async def test_inbound_email_without_the_secret_or_with_a_forged_reply_address_is_refused(
    story: Story, replies: Topic
) -> None:
    await story.line.load_directory([ANA])
    await _notified(story, "msg-trip", ["staff-ana"], 2)
    reply_to = _reply_to(story, ANA_EMAIL)
    local, domain = reply_to.split("@")
    forged = f"{local[:-1]}{'a' if local[-1] != 'a' else 'b'}@{domain}"

    no_secret = await story.email_reply(sender=ANA_EMAIL, to=reply_to, text="x", secret=None)
    wrong = await story.email_reply(sender=ANA_EMAIL, to=reply_to, text="x", secret="guess")
    wrong_path = await story.http.post("/webhooks/sendgrid/inbound/guess", data={"from": "a@b.c"})
    tampered = await story.email_reply(sender=ANA_EMAIL, to=forged, text="Tampered address")
    assert [r.status_code for r in (no_secret, wrong, wrong_path)] == [403, 403, 403]
    assert tampered.json() == {"outcome": "no_conversation"}

    # The secret as the URL's last path segment works as well as in basic auth.
    in_path = await story.http.post(
        f"/webhooks/sendgrid/inbound/{INBOUND_EMAIL_SECRET}",
        data={
            "from": ANA_EMAIL,
            "to": reply_to,
            "subject": "Re: trip",
            "text": "Counted me in.",
            "headers": "Message-ID: <path-secret@springfield.example>\n",
        },
    )
    assert in_path.json() == {"outcome": "published"}
    [reply] = await _published(replies, 1)
    assert reply["text"] == "Counted me in."


async def test_a_reply_to_a_stopped_conversation_gets_one_closing_notice_and_is_not_published(
    story: Story, replies: Topic
) -> None:
    line = story.line
    await line.load_directory([LUCIA, ANA])
    await _notified(story, "msg-last", ["guardian-lucia", "staff-ana"], 4)
    reply_to = _reply_to(story, ANA_EMAIL)
    await line.publish(
        line.settings.kafka.conversation_state_topic,
        conversation_state([], "2026-11-28T12:00:00Z", status="stopped"),
        "conv-77",
    )
    assert line.container is not None
    deadline = time.monotonic() + WAIT_SECONDS
    while (await line.container.store.directory.conversation_state("conv-77")) is None:
        assert time.monotonic() < deadline, "the conversation state never reached the store"
        await asyncio.sleep(0.05)

    first = await story.text_from(LUCIA_PHONE, "¿Sigue en pie la excursión?")
    second = await story.text_from(LUCIA_PHONE, "¿Hola?")
    assert "<Message>Esta conversación se ha cerrado" in first.text, "in her language"
    assert "<Message>" not in second.text, "the notice comes once, not on every reply"

    mails_before = len(line.sendgrid.accepted)
    # SendGrid stumbles once: the notice goes through the same retries as every email.
    line.sendgrid.fail_next(status=503)
    for text in ("Is the trip still on?", "Hello?"):
        response = await story.email_reply(sender=ANA_EMAIL, to=reply_to, text=text)
        assert response.json() == {"outcome": "closed"}
    notices = line.sendgrid.accepted[mails_before:]
    assert len(notices) == 1, "one closing email, not one per reply"
    [notice] = notices
    assert notice.body["personalizations"][0]["to"][0]["email"] == ANA_EMAIL
    assert "This conversation has been closed" in notice.body["content"][0]["value"]

    # A reply in another, open conversation is published — and it is the only one.
    await line.send(send_request("msg-other", ["guardian-lucia"], conversation_id="conv-88"))
    await line.final_events("msg-other", 2)
    await story.text_from(LUCIA_PHONE, "Gracias")
    [reply] = await _published(replies, 1)
    assert reply["conversation_id"] == "conv-88"


async def test_a_reply_is_translated_into_the_other_participants_languages_once(
    tmp_path: Path,
) -> None:
    with FakeDeepL() as deepl:
        async with running_story(tmp_path, deepl=deepl) as story:
            kafka = story.line.settings.kafka
            replies = await _reader(kafka.replies_topic, kafka.partitions)
            try:
                await story.line.load_directory([LUCIA, ANA])
                await _notified(story, "msg-both", ["guardian-lucia", "staff-ana"], 4)
                translated_before = len(deepl.translations)
                for _ in range(2):
                    await story.text_from(LUCIA_PHONE, "Sí, la firmo mañana.", "SMtranslate")

                [reply] = await _published(replies, 1)
                assert reply["language"] == "es"
                assert reply["translations"] == {"en": "[EN-US] Sí, la firmo mañana."}
                assert len(deepl.translations) == translated_before + 1
            finally:
                await replies.consumer.stop()


async def test_a_reply_from_a_shared_phone_names_everyone_the_text_was_for(
    story: Story, replies: Topic
) -> None:
    line = story.line
    dennis = recipient("guardian-dennis", "Dennis", "guardian", phone="+15555550123")
    maya = recipient("guardian-maya", "Maya", "guardian", phone="+15555550123")
    await line.load_directory([dennis, maya])
    await _notified(story, "msg-family", ["guardian-dennis", "guardian-maya"], 4)

    await story.text_from("+15555550123", "Thanks!")

    [reply] = await _published(replies, 1)
    assert reply["author_recipient_ids"] == ["guardian-dennis", "guardian-maya"]
    assert reply["authors_certain"] is False


@pytest.mark.parametrize("sent_last", ["Para Dennis", "For Maya"])
async def test_a_reply_to_two_texts_on_a_shared_phone_names_both_whichever_went_last(
    story: Story, replies: Topic, sent_last: str
) -> None:
    # Different languages: two texts to one phone, sent at once. Whichever Twilio takes
    # last, the reply is from either of them, with the Spanish reader as the hint.
    line = story.line
    phone = "+15555550124"
    dennis = recipient("guardian-dennis", "Dennis", "guardian", language="es", phone=phone)
    maya = recipient("guardian-maya", "Maya", "guardian", language="en", phone=phone)
    await line.load_directory([dennis, maya])
    line.twilio.answer_later[sent_last] = 0.3
    await _notified(story, "msg-family", ["guardian-dennis", "guardian-maya"], 4)
    texts = [m["body"] for m in line.twilio.messages if m["to"] == phone]
    assert len(texts) == 2
    assert texts[-1].startswith(sent_last), texts

    await story.text_from(phone, "Gracias, la firmo mañana por la mañana.")

    [reply] = await _published(replies, 1)
    assert reply["author_recipient_ids"] == ["guardian-dennis", "guardian-maya"]
    assert reply["authors_certain"] is False
    assert (reply["language"], reply["author_hint"]) == ("es", "guardian-dennis")


async def test_someone_we_sent_nothing_lately_is_told_how_to_answer_in_their_language(
    story: Story, replies: Topic
) -> None:
    await story.line.load_directory([LUCIA])

    known = await story.text_from(LUCIA_PHONE, "Hola?")

    assert "<Message>Para responder, abra la conversación en la aplicación de " in known.text
    assert await replies.settle() == [], "never attributed to some conversation"


async def test_a_phone_flooding_replies_is_cut_off(story: Story, replies: Topic) -> None:
    await story.line.load_directory([LUCIA])
    await _notified(story, "msg-flood", ["guardian-lucia"], 2)

    for n in range(8):
        await story.text_from(LUCIA_PHONE, f"reply {n}")

    assert len(await _published(replies, 5)) == 5, "the burst, and nothing beyond it"


async def test_an_unsigned_or_forged_inbound_text_is_refused_and_publishes_nothing(
    story: Story, replies: Topic
) -> None:
    await story.line.load_directory([LUCIA])
    await _notified(story, "msg-forged", ["guardian-lucia"], 2)
    form = {"MessageSid": "SMforged", "From": LUCIA_PHONE, "To": "+15555550100", "Body": "Hola"}

    unsigned = await story.http.post("/webhooks/twilio/inbound", data=form)
    forged = await story.http.post(
        "/webhooks/twilio/inbound", data=form, headers={"X-Twilio-Signature": "bm90IGl0"}
    )

    assert (unsigned.status_code, forged.status_code) == (403, 403)
    assert await replies.settle() == []
    # The same message, properly signed, is taken: the refusals marked nothing as seen.
    await story.text_from(LUCIA_PHONE, "Hola", "SMforged")
    [reply] = await _published(replies, 1)
    assert reply["provider_message_id"] == "SMforged"

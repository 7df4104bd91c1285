"""Reading an email reply: SendGrid Inbound Parse's form (and the secret that guards it), the
new text without quoted history or signature, and its language, offline."""

from __future__ import annotations

import base64

import pytest

from notifier.adapters.lingua_languages import LinguaDetector
from notifier.adapters.mail_replies import MailReplyParser
from notifier.adapters.sendgrid import SendGridInboundParse
from notifier.domain.model import ReplyAttachment
from notifier.ports import WebhookRejected

SECRET = "inbound-secret"
LANGUAGES = ("en", "es", "fr", "ar", "ko", "pt", "ru", "so", "tl", "uk", "vi", "zh-Hans", "ht")


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"authorization": f"Basic {token}"}


# -- the secret --------------------------------------------------------------------------------


def test_the_secret_is_taken_from_the_path_or_basic_auth() -> None:
    inbound = SendGridInboundParse(SECRET)
    inbound.authenticate({}, SECRET)
    inbound.authenticate(basic("sendgrid", SECRET), None)


@pytest.mark.parametrize(
    ("headers", "path_secret"),
    [
        ({}, None),
        ({}, "guess"),
        (basic("sendgrid", "guess"), None),
        (basic(SECRET, ""), None),  # the secret as the user name is not the password
        ({"authorization": "Basic !!!"}, None),
        ({"authorization": f"Bearer {SECRET}"}, None),
    ],
)
def test_anything_else_is_refused(headers: dict[str, str], path_secret: str | None) -> None:
    with pytest.raises(WebhookRejected):
        SendGridInboundParse(SECRET).authenticate(headers, path_secret)


# -- the form ----------------------------------------------------------------------------------

FORM = {
    "from": "Ana Park <Ana@Springfield.example>",
    "to": "Springfield Schools <reply+abc@reply.springfield.example>",
    "cc": "Other <other@example.org>",
    "subject": "Re: New message from Ms. Rivera",
    "text": "Yes.\n\nOn Tue wrote:\n> old",
    "envelope": '{"to":["reply+ABC@reply.springfield.example"],"from":"ana@springfield.example"}',
    "headers": "Message-ID: <m-1@mail.example>\nDate: Sat, 28 Nov 2026 10:00:00 +0000\n",
}


def test_the_form_becomes_an_inbound_email() -> None:
    attachment = ReplyAttachment("slip.pdf", "application/pdf", 1000)
    email = SendGridInboundParse(SECRET).inbound_email(FORM, [attachment])
    assert email.message_id == "<m-1@mail.example>"
    assert email.sender == "ana@springfield.example"
    assert email.reply_addresses == (
        "reply+abc@reply.springfield.example",
        "other@example.org",
    ), "the envelope first, then To and Cc, each once"
    assert (email.subject, email.text) == (FORM["subject"], FORM["text"])
    assert email.attachments == (attachment,)


def test_without_a_message_id_retries_still_share_one_identity() -> None:
    form = FORM | {"headers": "Date: Sat, 28 Nov 2026 10:00:00 +0000\n"}
    first = SendGridInboundParse(SECRET).inbound_email(form, [])
    again = SendGridInboundParse(SECRET).inbound_email(dict(form), [])
    other = SendGridInboundParse(SECRET).inbound_email(form | {"text": "No."}, [])
    assert first.message_id == again.message_id != other.message_id
    assert first.message_id.startswith("sha256:")


def test_an_html_only_reply_is_read_as_text_without_scripts() -> None:
    form = {k: v for k, v in FORM.items() if k != "text"} | {
        "html": "<html><head><style>p{}</style></head><body><p>Yes &amp; thanks</p>"
        "<script>alert(1)</script><div>Ana</div></body></html>"
    }
    email = SendGridInboundParse(SECRET).inbound_email(form, [])
    assert email.text == "Yes & thanks\nAna"


@pytest.mark.parametrize(
    ("form", "complaint"),
    [
        ({k: v for k, v in FORM.items() if k != "from"}, "no sender"),
        (FORM | {"from": "no address here"}, "no sender"),
        (FORM | {"envelope": "{not json"}, "envelope is not JSON"),
    ],
)
def test_a_form_that_is_no_inbound_email_is_malformed(form: dict[str, str], complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        SendGridInboundParse(SECRET).inbound_email(form, [])


# -- the new text ------------------------------------------------------------------------------

GMAIL_ENGLISH = """Yes, I can chaperone on Friday.

On Sat, Nov 28, 2026 at 9:00 AM Springfield Schools <reply+x@r.example> wrote:
> Hello Ana,
> Field trip forms are due Friday.
"""
GMAIL_SPANISH = """Sí, la firmo mañana.

Gracias,
Lucía

El sáb, 28 nov 2026 a las 9:00, Springfield Schools (<reply+x@r.example>) escribió:
> Hola Lucía:
> Los formularios vencen el viernes.
"""
OUTLOOK = """I'll be there.

________________________________
From: Springfield Schools <reply+x@r.example>
Sent: Saturday, November 28, 2026 9:00 AM
To: Ana Park <ana@springfield.example>
Subject: New message from Ms. Rivera

Hello Ana,
"""
FRENCH = """Merci, c'est noté.

Le sam. 28 nov. 2026 à 09:00, Springfield Schools <reply+x@r.example> a écrit :
> Bonjour,
"""
IPHONE = (
    "Running late, sorry.\n\nSent from my iPhone\n\n> On Nov 28, 2026, at 9:00 AM, X wrote:\n> hi"
)


@pytest.mark.parametrize(
    ("body", "new_text"),
    [
        (GMAIL_ENGLISH, "Yes, I can chaperone on Friday."),
        (GMAIL_SPANISH, "Sí, la firmo mañana."),
        (OUTLOOK, "I'll be there."),
        (FRENCH, "Merci, c'est noté."),
        (IPHONE, "Running late, sorry."),
        (GMAIL_ENGLISH.replace("\n", "\r\n"), "Yes, I can chaperone on Friday."),
        ("Just this, no history.", "Just this, no history."),
        ("Thanks,\n\nOn Sat wrote:\n> x", "Thanks,"),
        ("", ""),
    ],
    ids=["gmail", "gmail-es", "outlook", "french", "iphone", "crlf", "plain", "thanks", "empty"],
)
def test_only_the_new_text_is_kept(body: str, new_text: str) -> None:
    assert MailReplyParser(LANGUAGES).new_text(body) == new_text


def test_a_quote_in_the_middle_of_the_reply_is_the_persons_own() -> None:
    body = "As you said:\n> forms are due Friday\nI'll send it Thursday."
    assert MailReplyParser(LANGUAGES).new_text(body) == body


# -- the language ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Sí, la firmo mañana.", "es"),
        ("Yes, I can chaperone on Friday.", "en"),
        ("Merci beaucoup, à demain", "fr"),
        ("Cảm ơn, tôi sẽ ký vào ngày mai", "vi"),
        ("Спасибо, подпишу завтра", "ru"),
        ("Дякую, підпишу завтра", "uk"),
        ("شكرا، سأوقعها غدا", "ar"),
        ("감사합니다, 내일 서명할게요", "ko"),
        ("谢谢，我明天签", "zh"),
    ],
)
def test_the_language_of_a_reply_is_told_offline(text: str, language: str) -> None:
    assert LinguaDetector(LANGUAGES).detect(text) == language


def test_a_text_too_short_to_tell_has_no_language() -> None:
    assert LinguaDetector(LANGUAGES).detect("ok") is None


def test_languages_lingua_lacks_are_left_out_rather_than_failing() -> None:
    detector = LinguaDetector(("en", "ht"))
    assert detector.languages == frozenset({"en"})
    assert detector.detect("Thank you very much") is None, "one candidate decides nothing"

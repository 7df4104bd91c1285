"""What a person reads: the SMS with its label (rule 5) and the email frame."""

from __future__ import annotations

import gettext
from dataclasses import replace

import pytest

from notifier.adapters.catalogs import GettextCatalogs
from notifier.domain.model import Attachment, Sender
from notifier.domain.rendering import Wording, email_subject, render_email, render_sms
from notifier.domain.resolution import MessageText
from tests.builders import BODY, BODY_ES, district, send_request

ORIGINAL_NOTE = "(This message is in its original language.)"


def text(body: str = BODY, language: str = "en", *, original: bool = False) -> MessageText:
    return MessageText(body, language, in_original_language=original)


def english() -> Wording:
    # English is the source language: the message ids are the wording.
    return gettext.NullTranslations()


@pytest.fixture(scope="module")
def catalogs() -> GettextCatalogs:
    return GettextCatalogs()


# SMS


def test_sms_begins_with_the_label_for_the_recipient() -> None:
    sms = render_sms(send_request(), district(sms_label=True), "Dennis", text(), english())

    assert sms.body == "For Dennis: Ms. Rivera: Field trip forms are due Friday."


def test_spanish_sms_label_comes_from_the_catalog(catalogs: GettextCatalogs) -> None:
    sms = render_sms(
        send_request(),
        district(sms_label=True),
        "Dennis",
        text(BODY_ES, "es"),
        catalogs.wording("es"),
    )

    assert sms.body == f"Para Dennis: Ms. Rivera: {BODY_ES}"


def test_catalog_wording_for_english_is_the_source_wording(catalogs: GettextCatalogs) -> None:
    sms = render_sms(send_request(), district(), "Dennis", text(), catalogs.wording("en"))

    assert sms.body.startswith("For Dennis: ")


def test_sms_has_no_label_when_the_district_turns_it_off() -> None:
    sms = render_sms(send_request(), district(sms_label=False), "Dennis", text(), english())

    assert sms.body == "Ms. Rivera: Field trip forms are due Friday."


def test_two_guardians_sharing_one_phone_each_get_their_own_label() -> None:
    request = send_request()

    bodies = [
        render_sms(request, district(), first_name, text(), english()).body
        for first_name in ("Dennis", "Mina")
    ]

    assert bodies == [
        "For Dennis: Ms. Rivera: Field trip forms are due Friday.",
        "For Mina: Ms. Rivera: Field trip forms are due Friday.",
    ]


def test_sms_links_each_attachment() -> None:
    request = send_request(
        attachments=(Attachment("form.pdf", "https://files.example/f/9", 48213),)
    )

    sms = render_sms(request, district(), "Dennis", text(), english())

    assert sms.body.endswith("\nAttachment: https://files.example/f/9")


def test_spanish_sms_links_attachment_in_spanish(catalogs: GettextCatalogs) -> None:
    request = send_request(attachments=(Attachment("form.pdf", "https://files.example/f/9"),))

    sms = render_sms(request, district(), "Dennis", text(BODY_ES, "es"), catalogs.wording("es"))

    assert sms.body.endswith("\nArchivo adjunto: https://files.example/f/9")


def test_sms_in_original_language_says_so() -> None:
    sms = render_sms(send_request(), district(), "Dennis", text(original=True), english())

    assert sms.body == f"For Dennis: Ms. Rivera: {BODY}\n{ORIGINAL_NOTE}"


def test_sms_in_translation_has_no_original_language_note() -> None:
    sms = render_sms(send_request(), district(), "Dennis", text(original=False), english())

    assert ORIGINAL_NOTE not in sms.body


# Email


def test_email_subject_names_the_sender() -> None:
    assert email_subject(send_request(), english()) == "New message from Ms. Rivera"


def test_email_subject_names_the_conversation_when_it_has_a_title() -> None:
    request = send_request(conversation_title="Room 12 field trip")

    assert email_subject(request, english()) == "New message from Ms. Rivera in Room 12 field trip"


def test_spanish_email_subject_comes_from_the_catalog(catalogs: GettextCatalogs) -> None:
    request = send_request(conversation_title="Excursión")

    subject = email_subject(request, catalogs.wording("es"))

    assert subject == "Nuevo mensaje de Ms. Rivera en Excursión"


def test_email_carries_subject_body_and_reply_hint() -> None:
    email = render_email(
        send_request(),
        district(),
        "en",
        text(),
        english(),
        names="Dennis",
        sent_at="Nov 28, 2026, 9:00 AM",
    )

    assert email.subject == "New message from Ms. Rivera"
    assert "Ms. Rivera wrote:" in email.text
    assert BODY in email.text
    assert "To reply, open the conversation in the Springfield Public Schools app." in email.text
    assert f"<p>{BODY}</p>" in email.html


def test_email_html_escapes_user_content() -> None:
    request = send_request(
        sender=Sender("staff-3", "<b>Ms. Rivera</b>", "staff"),
        conversation_title="<i>Trip</i>",
    )
    body = 'Forms due <script>alert("x")</script> Friday & after'

    email = render_email(
        request,
        district(),
        "en",
        text(body),
        english(),
        names="Dennis",
        sent_at="Nov 28, 2026, 9:00 AM",
    )

    assert "<script>" not in email.html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in email.html
    assert "Friday &amp; after" in email.html
    assert "<b>" not in email.html
    assert "<i>" not in email.html
    # The plain-text part is not HTML: it keeps the characters as written.
    assert body in email.text


def test_email_html_escapes_attachment_links() -> None:
    request = send_request(
        attachments=(Attachment('a"><script>.pdf', 'https://files.example/f/9?a=1&b="2"'),)
    )

    email = render_email(
        request,
        district(),
        "en",
        text(),
        english(),
        names="Dennis",
        sent_at="Nov 28, 2026, 9:00 AM",
    )

    assert "<script>" not in email.html
    assert 'href="https://files.example/f/9?a=1&amp;b=&quot;2&quot;"' in email.html
    assert '- a"><script>.pdf: https://files.example/f/9?a=1&b="2"' in email.text


def test_email_html_is_left_to_right_for_english() -> None:
    email = render_email(
        send_request(),
        district(),
        "en",
        text(),
        english(),
        names="Dennis",
        sent_at="Nov 28, 2026, 9:00 AM",
    )

    assert '<html lang="en" dir="ltr">' in email.html


def test_email_html_is_right_to_left_for_arabic() -> None:
    arabic_body = "يجب تسليم استمارات الرحلة يوم الجمعة."

    email = render_email(
        send_request(),
        district(),
        "ar",
        text(arabic_body, "ar"),
        english(),
        names="Dennis",
        sent_at="Nov 28, 2026, 9:00 AM",
    )

    assert '<html lang="ar" dir="rtl">' in email.html
    assert f'<blockquote lang="ar" dir="rtl"><p>{arabic_body}</p></blockquote>' in email.html


def test_untranslated_body_keeps_its_own_language_inside_a_translated_frame() -> None:
    email = render_email(
        send_request(),
        district(),
        "ar",
        text(original=True),
        english(),
        names="Dennis",
        sent_at="Nov 28, 2026, 9:00 AM",
    )

    assert '<html lang="ar" dir="rtl">' in email.html
    assert f'<blockquote lang="en" dir="ltr"><p>{BODY}</p></blockquote>' in email.html
    assert f"<p><em>{ORIGINAL_NOTE}</em></p>" in email.html
    assert ORIGINAL_NOTE in email.text


def test_email_in_spanish_uses_the_catalog_frame(catalogs: GettextCatalogs) -> None:
    email = render_email(
        send_request(),
        district(),
        "es",
        text(BODY_ES, "es"),
        catalogs.wording("es"),
        names="Dennis",
        sent_at="Nov 28, 2026, 9:00 AM",
    )

    assert email.subject == "Nuevo mensaje de Ms. Rivera"
    assert email.text.splitlines()[:3] == ["Hola, Dennis:", "", "Ms. Rivera escribió:"]
    assert "Enviado: Nov 28, 2026, 9:00 AM" in email.text
    assert '<html lang="es" dir="ltr">' in email.html
    assert (
        "Para responder, abra la conversación en la aplicación de Springfield Public Schools."
        in email.text
    )


def test_a_subject_built_from_others_text_cannot_start_a_header_of_its_own() -> None:
    request = replace(
        send_request(),
        sender=Sender("staff-3", "Ms. Rivera\r\nBcc: everyone@example.org", "staff"),
        conversation_title="Trip\u2028Reply-To: x@evil.example\x00",
    )

    subject = email_subject(request, english())

    assert "\r" not in subject
    assert "\n" not in subject
    assert "\u2028" not in subject
    assert "\x00" not in subject
    assert subject == (
        "New message from Ms. Rivera Bcc: everyone@example.org in Trip Reply-To: x@evil.example"
    )

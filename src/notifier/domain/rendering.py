"""The words a person reads: the SMS with its "For Dennis: " label, the email frame.

System wording comes from the translated catalogs through ``Wording``; the message body
comes from the request (or its translation). Message ids here are extracted by Babel
(``make catalogs``): call ``wording.gettext`` with a literal string so extraction finds it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from functools import partial
from html import escape
from typing import Protocol

from notifier.domain.model import (
    Attachment,
    Channel,
    District,
    OutboundMessage,
    Recipient,
    RenderedEmail,
    RenderedSms,
    SendRequest,
)
from notifier.domain.reply_addresses import reply_address
from notifier.domain.resolution import (
    MessageText,
    PlannedDelivery,
    RecipientPlan,
    message_text,
    original_text,
)
from notifier.domain.sms import fit_sms
from notifier.domain.sms import segments as sms_segments
from notifier.domain.values import value_type

RIGHT_TO_LEFT_LANGUAGES = frozenset({"ar", "he", "fa", "ur", "ps", "yi", "dv", "ckb"})


class Wording(Protocol):
    """The system wording of one language (a gettext catalog)."""

    def gettext(self, message: str, /) -> str: ...


class Phrasebook(Protocol):
    """Every language's system wording, and its ways with lists of names and with dates."""

    def wording(self, language: str) -> Wording: ...

    def join_names(self, language: str, names: Sequence[str]) -> str:
        """ "Dennis and Maya" / "Dennis y Maya": a list in the language's own style."""
        ...

    def format_datetime(self, language: str, moment: datetime, timezone: str) -> str:
        """A moment as readers of the language write it, in the district's time zone."""
        ...


@value_type
class Composer:
    """Writes the message each delivery sends: the text, the email or the inbox entry, in
    the person's language."""

    phrasebook: Phrasebook
    message_link_template: str | None = None
    """Where a message can be read in the app ({conversation_id}, {message_id}), for the
    "Read more" of a shortened text; None: "Read more in the app"."""
    reply_address_secret: bytes | None = None
    """Signs each email's Reply-To address (with the district's reply domain); None: emails
    carry no Reply-To and replies go to the sender address."""

    def message(
        self,
        request: SendRequest,
        district: District,
        plan: RecipientPlan,
        planned: PlannedDelivery,
        delivery_id: str,
        *,
        resume_link: str | None = None,
        label_name: str | None = None,
    ) -> OutboundMessage:
        """``label_name``: the names a shared phone or address is greeted with, instead of
        the person's first name."""
        wording = self.phrasebook.wording(plan.language)
        text = message_text(request, plan.language) or original_text(request)
        # Built once with its channel's parts: dataclasses.replace on a frozen message cost
        # more than the rest of the envelope, for every delivery.
        message = partial(
            OutboundMessage,
            delivery_id=delivery_id,
            message_id=request.message_id,
            conversation_id=request.conversation_id,
            recipient_id=plan.recipient.id,
            channel=planned.channel,
            to=planned.address,
            language=plan.language,
        )
        names = label_name or first_name(plan.recipient)
        if planned.channel is Channel.SMS:
            rendered = render_sms(request, district, names, text, wording)
            # Capped at the district's number of segments: a long message ends with a link
            # to the whole of it in the app instead of costing nine texts.
            body = fit_sms(
                rendered.body,
                max_segments=district.sms_max_segments,
                read_more=self._read_more(request, wording),
            ).text
            if resume_link:
                # Never cut: it is how the person gets email back (and it comes once).
                body += "\n" + resume_link_line(wording, resume_link)
            cost = sms_segments(body)
            return message(
                sms=RenderedSms(body, cost.count, cost.encoding.value),
                sender_address=district.sms_sender,
            )
        if planned.channel is Channel.EMAIL:
            reply_to = (
                reply_address(delivery_id, district.reply_domain, self.reply_address_secret)
                if district.reply_domain and self.reply_address_secret
                else None
            )
            return message(
                email=render_email(
                    request,
                    district,
                    plan.language,
                    text,
                    wording,
                    names=names,
                    sent_at=self.phrasebook.format_datetime(
                        plan.language, request.created_at, district.timezone
                    ),
                    replies_by_email=reply_to is not None,
                ),
                sender_address=district.email_from_address,
                sender_name=district.email_from_name or district.name,
                reply_to=reply_to,
            )
        return message(inbox_body=text.text, sender_name=request.sender.display_name)

    def bilingual_sms(
        self,
        request: SendRequest,
        district: District,
        first_names: Sequence[str],
        languages: Sequence[str],
    ) -> RenderedSms:
        """One text for a shared phone whose people read different languages: the message
        in each of them, each part labelled for everyone in its own language."""
        parts = []
        for language in languages:
            wording = self.phrasebook.wording(language)
            text = message_text(request, language) or original_text(request)
            names = self.phrasebook.join_names(language, first_names)
            parts.append(render_sms(request, district, names, text, wording).body)
        body = fit_sms(
            "\n\n".join(parts),
            max_segments=district.sms_max_segments,
            read_more=self._read_more(request, self.phrasebook.wording(languages[0])),
        ).text
        cost = sms_segments(body)
        return RenderedSms(body, cost.count, cost.encoding.value)

    def _read_more(self, request: SendRequest, wording: Wording) -> str:
        if self.message_link_template is None:
            return wording.gettext("Read more in the app.")
        link = self.message_link_template.replace(
            "{conversation_id}", request.conversation_id
        ).replace("{message_id}", request.message_id)
        return wording.gettext("Read more: {link}").format(link=link)


def first_name(recipient: Recipient) -> str:
    return recipient.first_name or recipient.display_name.split(" ")[0]


def text_direction(language: str) -> str:
    return "rtl" if language.split("-")[0].casefold() in RIGHT_TO_LEFT_LANGUAGES else "ltr"


def sms_label(wording: Wording, first_name: str) -> str:
    """Rule 5: tells which person on a shared phone the text is for."""
    return wording.gettext("For {first_name}: ").format(first_name=first_name)


def render_sms(
    request: SendRequest,
    district: District,
    first_name: str,
    text: MessageText,
    wording: Wording,
    resume_link: str | None = None,
) -> RenderedSms:
    parts = [sms_label(wording, first_name) if district.sms_label else ""]
    parts.append(
        wording.gettext("{sender}: {message}").format(
            sender=request.sender.display_name, message=text.text
        )
    )
    if text.in_original_language:
        parts.append("\n" + wording.gettext("(This message is in its original language.)"))
    for attachment in request.attachments:
        parts.append(
            "\n"
            + wording.gettext("Attachment: {url}").format(
                url=attachment.url, filename=attachment.filename
            )
        )
    if resume_link:
        parts.append("\n" + resume_link_line(wording, resume_link))
    return RenderedSms("".join(parts))


def resume_link_line(wording: Wording, link: str) -> str:
    """The person's way back to email, in the first text standing in for a failing one."""
    return wording.gettext("Email working again? Tap to get messages by email: {link}").format(
        link=link
    )


def email_subject(request: SendRequest, wording: Wording) -> str:
    sender = request.sender.display_name
    if request.conversation_title:
        subject = wording.gettext("New message from {sender} in {conversation}").format(
            sender=sender, conversation=request.conversation_title
        )
    else:
        subject = wording.gettext("New message from {sender}").format(sender=sender)
    return one_line(subject)


_LINE_BREAKS_AND_CONTROLS = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]+")


def one_line(text: str) -> str:
    """A header value from text others wrote (a name, a title): line breaks and control
    characters become one space, so nothing can start a header of its own."""
    return " ".join(_LINE_BREAKS_AND_CONTROLS.sub(" ", text).split())


def render_email(
    request: SendRequest,
    district: District,
    language: str,
    text: MessageText,
    wording: Wording,
    *,
    names: str,
    sent_at: str,
    replies_by_email: bool = False,
) -> RenderedEmail:
    """``names``: whom the email greets (several people may share one address);
    ``sent_at``: when the message was written, formatted for the reader;
    ``replies_by_email``: the email carries a Reply-To that reaches the conversation."""
    subject = email_subject(request, wording)
    greeting = wording.gettext("Hello {names},").format(names=names)
    intro = wording.gettext("{sender} wrote:").format(sender=request.sender.display_name)
    sent_line = wording.gettext("Sent: {when}").format(when=sent_at)
    original_note = (
        wording.gettext("(This message is in its original language.)")
        if text.in_original_language
        else None
    )
    reply_hint = wording.gettext("To reply, open the conversation in the {district} app.").format(
        district=district.name
    )
    if replies_by_email:
        reply_hint += " " + wording.gettext("You can also answer by replying to this email.")
    attachments_heading = wording.gettext("Attachments:")

    text_lines = [greeting, "", intro, "", text.text]
    if original_note:
        text_lines += ["", original_note]
    if request.attachments:
        text_lines += ["", attachments_heading]
        text_lines += [f"- {a.filename}: {a.url}" for a in request.attachments]
    text_lines += ["", sent_line, reply_hint]

    html = _email_html(
        frame_language=language,
        body_language=text.language,
        subject=subject,
        greeting=greeting,
        sent_line=sent_line,
        intro=intro,
        body=text.text,
        original_note=original_note,
        attachments_heading=attachments_heading,
        attachments=request.attachments,
        reply_hint=reply_hint,
    )
    return RenderedEmail(subject=subject, text="\n".join(text_lines), html=html)


def _email_html(
    *,
    frame_language: str,
    body_language: str,
    subject: str,
    greeting: str,
    sent_line: str,
    intro: str,
    body: str,
    original_note: str | None,
    attachments_heading: str,
    attachments: Sequence[Attachment],
    reply_hint: str,
) -> str:
    # The frame is in the recipient's language; the body keeps its own lang/dir, which
    # differs when it is the untranslated original.
    paragraphs = "".join(f"<p>{escape(line)}</p>" for line in body.split("\n\n") if line)
    parts = [
        "<!doctype html>",
        f'<html lang="{escape(frame_language)}" dir="{text_direction(frame_language)}">',
        f'<head><meta charset="utf-8"><title>{escape(subject)}</title></head>',
        "<body>",
        f"<p>{escape(greeting)}</p>",
        f"<p>{escape(intro)}</p>",
        f'<blockquote lang="{escape(body_language)}" dir="{text_direction(body_language)}">'
        f"{paragraphs}</blockquote>",
    ]
    if original_note:
        parts.append(f"<p><em>{escape(original_note)}</em></p>")
    if attachments:
        items = "".join(
            f'<li><a href="{escape(a.url)}">{escape(a.filename)}</a></li>' for a in attachments
        )
        parts.append(f"<p>{escape(attachments_heading)}</p><ul>{items}</ul>")
    parts += [
        f"<p><small>{escape(sent_line)}</small></p>",
        f"<p>{escape(reply_hint)}</p>",
        "</body>",
        "</html>",
    ]
    return "".join(parts)

"""Replies that come back by text or email: which conversation they answer, who wrote them,
in what language — and whether the conversation still takes them."""

from __future__ import annotations

import html
import logging
import uuid
from dataclasses import replace
from datetime import datetime, timedelta
from enum import StrEnum

from notifier.domain.model import (
    Channel,
    ConversationStatus,
    OutboundMessage,
    RenderedEmail,
    Reply,
    ReplyAttachment,
)
from notifier.domain.records import DeliveryRecord
from notifier.domain.reply_addresses import InvalidReplyAddress, delivery_of
from notifier.domain.resolution import choose_language
from notifier.domain.values import value_type
from notifier.handlers.translations import TranslationSource, translations
from notifier.ports import (
    Catalogs,
    ChannelSender,
    DeliveryHistory,
    DeliveryLedger,
    Directory,
    InboundEmail,
    InboundText,
    LanguageDetector,
    Metrics,
    ProviderError,
    ProviderEvents,
    ReplyPublisher,
    ReplyTextReader,
    TranslationCache,
    Translator,
)
from notifier.rate_limit import RateLimited, RateLimiter

log = logging.getLogger(__name__)

_REPLY_NAMESPACE = uuid.UUID("0e8f3a44-7c1b-5d2e-9f60-3b1a2c4d5e6f")
_CLOSING_NOTICES = "closing-notice"
"""Provider-event namespace remembering who was told a conversation is closed."""


@value_type
class ReplyPolicy:
    window: timedelta = timedelta(days=7)
    """A text answers the last notification its phone got within this time."""
    email_window: timedelta = timedelta(days=60)
    """An email reply names its notification exactly; this bounds how long that works."""
    max_chars: int = 1600


@value_type
class ReplyDependencies:
    directory: Directory
    ledger: DeliveryLedger
    history: DeliveryHistory
    provider_events: ProviderEvents
    """Inbound messages already taken (providers retry), and closing notices already sent."""
    translations: TranslationCache
    replies: ReplyPublisher
    policy: ReplyPolicy
    catalogs: Catalogs
    metrics: Metrics
    senders_limit: RateLimiter
    """Per phone number or address: a sender flooding replies is not published beyond it."""
    reply_address_secret: bytes | None = None
    """Signs the Reply-To addresses of notification emails; None: email replies are not taken."""
    email_sender: ChannelSender | None = None
    """For the one "this conversation is closed" email to someone who replied by email."""
    text_reader: ReplyTextReader | None = None
    """Cuts the quoted history and signature off an email reply; None keeps the whole body."""
    detector: LanguageDetector | None = None
    translator: Translator | None = None


@value_type
class InboundReply:
    """A text or email someone sent back, before we know what it answers."""

    channel: Channel
    sender: str
    """Phone number or email address."""
    text: str
    provider: str
    provider_message_id: str
    received_at: datetime
    reply_addresses: tuple[str, ...] = ()
    """Email: the addresses it was sent to; ours names the notification it answers."""
    subject: str = ""
    attachments: tuple[ReplyAttachment, ...] = ()

    @property
    def event_namespace(self) -> str:
        return f"{self.provider}-inbound"


class ReplyOutcome(StrEnum):
    PUBLISHED = "published"
    REPEATED = "repeated"
    NO_CONVERSATION = "no_conversation"
    RATE_LIMITED = "rate_limited"
    CLOSED = "closed"
    EMPTY = "empty"


@value_type
class ReplyResult:
    outcome: ReplyOutcome
    answer: str | None = None
    """A text to send back by SMS, in the person's language (how to answer in the app, or
    that the conversation is closed)."""


def reply_id_for(provider: str, provider_message_id: str) -> str:
    return str(uuid.uuid5(_REPLY_NAMESPACE, f"{provider}\x1f{provider_message_id}"))


async def receive_text_reply(
    text: InboundText, received_at: datetime, deps: ReplyDependencies
) -> ReplyResult:
    return await receive_reply(
        InboundReply(
            channel=Channel.SMS,
            sender=text.sender,
            text=text.body,
            provider="twilio",
            provider_message_id=text.message_sid,
            received_at=received_at,
        ),
        deps,
    )


async def receive_email_reply(
    email: InboundEmail, received_at: datetime, deps: ReplyDependencies
) -> ReplyResult:
    """Only what the person wrote is published: the quoted notification and their
    signature are cut off first."""
    reader = deps.text_reader
    return await receive_reply(
        InboundReply(
            channel=Channel.EMAIL,
            sender=email.sender,
            text=reader.new_text(email.text) if reader else email.text,
            provider="sendgrid",
            provider_message_id=email.message_id,
            received_at=received_at,
            reply_addresses=email.reply_addresses,
            subject=email.subject,
            attachments=email.attachments,
        ),
        deps,
    )


async def receive_reply(inbound: InboundReply, deps: ReplyDependencies) -> ReplyResult:
    """A reply is published to the conversation of the notification it answers — for a
    text, the last one its phone got within the window; for an email, the one its Reply-To
    address names — attributed to whom that notification was for (everyone it was
    labelled for, when the phone or inbox is shared). Exactly once per provider message,
    however often the webhook is retried. A sender we can't place is never attributed to a
    conversation; a stopped conversation takes nothing and says so, once."""
    if await deps.provider_events.provider_event_seen(
        inbound.event_namespace, inbound.provider_message_id
    ):
        return ReplyResult(ReplyOutcome.REPEATED)
    try:
        await deps.senders_limit.take(f"{inbound.channel}:{inbound.sender}")
    except RateLimited:
        return ReplyResult(ReplyOutcome.RATE_LIMITED)
    origin = await _answered_notification(inbound, deps)
    if origin is None:
        # By text, someone we know is told how to answer; an email we can't place (spam,
        # a stale or forged address) gets nothing back.
        answer = (
            await _how_to_answer(inbound.sender, deps) if inbound.channel is Channel.SMS else None
        )
        return ReplyResult(ReplyOutcome.NO_CONVERSATION, answer)
    state = await deps.directory.conversation_state(origin.conversation_id)
    if state is not None and state.status is ConversationStatus.STOPPED:
        answer = await _closing_notice_once(inbound, origin, deps)
        await deps.provider_events.remember_provider_event(
            inbound.event_namespace, inbound.provider_message_id
        )
        return ReplyResult(ReplyOutcome.CLOSED, answer)
    text = inbound.text.strip()[: deps.policy.max_chars]
    if not text and not inbound.attachments:
        await deps.provider_events.remember_provider_event(
            inbound.event_namespace, inbound.provider_message_id
        )
        return ReplyResult(ReplyOutcome.EMPTY)
    language = deps.detector.detect(text) if deps.detector and text else None
    told = await _told(inbound, origin, deps)
    authors = tuple(sorted({d.recipient_id for d in told}))
    reply = Reply(
        reply_id=reply_id_for(inbound.event_namespace, inbound.provider_message_id),
        conversation_id=origin.conversation_id,
        author_ids=authors,
        authors_certain=len(authors) == 1 and _same_sender(inbound, origin),
        author_hint=_author_hint(told, language) if len(authors) > 1 else None,
        channel=inbound.channel,
        text=text,
        received_at=inbound.received_at,
        provider=inbound.provider,
        provider_message_id=inbound.provider_message_id,
        language=language,
        attachments=inbound.attachments,
    )
    reply = replace(reply, translations=await _translations(reply, origin, deps))
    await deps.replies.publish(reply)
    # Remembered after publishing: a retry after a crash publishes again, with the same
    # reply_id, which readers drop.
    await deps.provider_events.remember_provider_event(
        inbound.event_namespace, inbound.provider_message_id
    )
    return ReplyResult(ReplyOutcome.PUBLISHED)


async def _answered_notification(
    inbound: InboundReply, deps: ReplyDependencies
) -> DeliveryRecord | None:
    if inbound.channel is Channel.SMS:
        last = await deps.history.latest_delivery_to(
            Channel.SMS, inbound.sender, inbound.received_at
        )
        return last if _within(last, inbound.received_at, deps.policy.window) else None
    secret = deps.reply_address_secret
    if secret is None:
        return None
    for address in inbound.reply_addresses:
        try:
            delivery_id = delivery_of(address, secret)
        except InvalidReplyAddress:
            continue
        notification = await deps.ledger.delivery(delivery_id)
        if notification is not None and notification.channel is Channel.EMAIL:
            window = deps.policy.email_window
            return notification if _within(notification, inbound.received_at, window) else None
    return None


def _within(delivery: DeliveryRecord | None, moment: datetime, window: timedelta) -> bool:
    return (
        delivery is not None
        and delivery.sent_at is not None
        and (delivery.sent_at >= moment - window)
    )


async def _told(
    inbound: InboundReply, origin: DeliveryRecord, deps: ReplyDependencies
) -> list[DeliveryRecord]:
    """The deliveries whose people may have written the reply. By text: every participant
    of the conversation that phone got a text for within the window — several on a shared
    phone, however many texts it took and in whatever order they went out. By email: those
    the answered email was for (one email to a family's shared inbox stands for several)."""
    if inbound.channel is Channel.SMS:
        span = (inbound.received_at - deps.policy.window, inbound.received_at)
        told = await deps.history.conversation_deliveries_to(
            Channel.SMS, inbound.sender, origin.conversation_id, span
        )
        return told or [origin]
    sharing = (
        await deps.ledger.deliveries_by_provider_id(origin.channel, origin.provider_message_id)
        if origin.provider_message_id
        else [origin]
    )
    return [d for d in sharing if d.message_id == origin.message_id]


def _author_hint(told: list[DeliveryRecord], language: str | None) -> str | None:
    """The one possible author who reads the language the reply is written in, where
    exactly one does: a hint, never certainty (a parent may answer in the other's
    language), so nobody is dropped from the authors for it."""
    if language is None:
        return None
    written_in = _primary_language(language)
    readers = {
        d.recipient_id for d in told if d.language and _primary_language(d.language) == written_in
    }
    return readers.pop() if len(readers) == 1 else None


def _primary_language(tag: str) -> str:
    return tag.split("-", 1)[0].lower()


def _same_sender(inbound: InboundReply, origin: DeliveryRecord) -> bool:
    # A forwarded email answered by someone else still reaches the conversation, but not
    # as certainly the person it was sent to.
    return (origin.address or "").lower() == inbound.sender.lower()


async def _translations(
    reply: Reply, origin: DeliveryRecord, deps: ReplyDependencies
) -> dict[str, str]:
    """Into the languages the conversation's participants were last written to in, once per
    reply and language (kept like outbound translations). A reply whose language we can't
    tell is left untranslated rather than guessed at."""
    if deps.translator is None or reply.language is None or not reply.text:
        return {}
    participants = await deps.ledger.deliveries_of_message(origin.message_id)
    return await translations(
        TranslationSource(reply.reply_id, reply.text, reply.language),
        {d.language for d in participants if d.language},
        deps.translations,
        deps.translator,
        deps.metrics,
    )


async def _closing_notice_once(
    inbound: InboundReply, origin: DeliveryRecord, deps: ReplyDependencies
) -> str | None:
    """The person learns once per conversation that it takes no more replies — by text in
    the webhook's answer, or by email — instead of writing into the void."""
    notice_key = f"{origin.conversation_id}\x1f{inbound.channel}\x1f{inbound.sender.lower()}"
    if await deps.provider_events.provider_event_seen(_CLOSING_NOTICES, notice_key):
        return None
    await deps.provider_events.remember_provider_event(_CLOSING_NOTICES, notice_key)
    district = await deps.directory.district(origin.district_id) if origin.district_id else None
    if district is None:
        return None
    language = choose_language(origin.language, district)
    notice = (
        deps.catalogs.wording(language)
        .gettext(
            "This conversation has been closed, so your reply was not delivered. "
            "You can still read it in the {district} app."
        )
        .format(district=district.name)
    )
    if inbound.channel is Channel.SMS:
        return notice
    if deps.email_sender is None or district.email_from_address is None:
        return None
    subject = inbound.subject.strip() or district.name
    if not subject.lower().startswith("re:"):
        subject = f"Re: {subject}"
    try:
        await deps.email_sender.send(
            OutboundMessage(
                delivery_id=reply_id_for(_CLOSING_NOTICES, notice_key),
                message_id=origin.message_id,
                conversation_id=origin.conversation_id,
                recipient_id=origin.recipient_id,
                channel=Channel.EMAIL,
                to=inbound.sender,
                language=language,
                email=RenderedEmail(
                    subject=subject,
                    text=notice,
                    html=f"<p>{html.escape(notice)}</p>",
                ),
                sender_address=district.email_from_address,
                sender_name=district.email_from_name or district.name,
            )
        )
    except ProviderError as error:
        # Told at most once: a failed notice is not retried on the next reply.
        log.warning("closing notice to a reply by email not sent: %s", error)
    return None


async def _how_to_answer(sender: str, deps: ReplyDependencies) -> str | None:
    """For someone we know but sent nothing lately: how to answer in the app, in their
    language. Unknown numbers get no answer at all."""
    people = await deps.directory.recipients_using(Channel.SMS, sender)
    if not people:
        return None
    district = await deps.directory.district(people[0].district_id)
    if district is None:
        return None
    language = choose_language(people[0].language, district)
    wording = deps.catalogs.wording(language)
    return wording.gettext("To reply, open the conversation in the {district} app.").format(
        district=district.name
    )

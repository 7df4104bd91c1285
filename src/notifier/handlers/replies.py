"""Replies that come back by text: which conversation they answer, and who wrote them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from notifier.domain.model import Channel, Reply
from notifier.domain.resolution import choose_language
from notifier.ports import Catalogs, ReplyPublisher, Store
from notifier.rate_limit import RateLimited, RateLimiter

INBOUND_SMS = "twilio-inbound"
_REPLY_NAMESPACE = uuid.UUID("0e8f3a44-7c1b-5d2e-9f60-3b1a2c4d5e6f")


@dataclass(frozen=True, slots=True)
class ReplyPolicy:
    window: timedelta = timedelta(days=7)
    max_chars: int = 1600


@dataclass(frozen=True, slots=True)
class ReplyDependencies:
    store: Store
    replies: ReplyPublisher
    policy: ReplyPolicy
    catalogs: Catalogs
    senders_limit: RateLimiter
    """Per phone number: a sender flooding replies is not published beyond it."""


class ReplyOutcome(StrEnum):
    PUBLISHED = "published"
    REPEATED = "repeated"
    NO_CONVERSATION = "no_conversation"
    RATE_LIMITED = "rate_limited"


@dataclass(frozen=True, slots=True)
class ReplyResult:
    outcome: ReplyOutcome
    answer: str | None = None
    """A text to send back, in the person's language (how to answer in the app)."""


def reply_id_for(provider: str, provider_message_id: str) -> str:
    return str(uuid.uuid5(_REPLY_NAMESPACE, f"{provider}\x1f{provider_message_id}"))


async def receive_text_reply(
    phone: str, body: str, message_sid: str, received_at: datetime, deps: ReplyDependencies
) -> ReplyResult:
    """A text that is not a keyword: published as a reply to the conversation of the last
    notification this phone got within the window, attributed to whom that text was for
    (everyone it was labelled for, when the phone is shared). Exactly once per provider
    message, however often the webhook is retried. A phone with no recent notification is
    never attributed to a conversation."""
    store = deps.store
    if await store.provider_event_seen(INBOUND_SMS, message_sid):
        return ReplyResult(ReplyOutcome.REPEATED)
    try:
        await deps.senders_limit.take(phone)
    except RateLimited:
        return ReplyResult(ReplyOutcome.RATE_LIMITED)
    last = await store.latest_delivery_to(Channel.SMS, phone, received_at)
    if last is None or last.sent_at is None or last.sent_at < received_at - deps.policy.window:
        return ReplyResult(ReplyOutcome.NO_CONVERSATION, await _how_to_answer(phone, deps))
    sharing = (
        await store.deliveries_by_provider_id(Channel.SMS, last.provider_message_id)
        if last.provider_message_id
        else [last]
    )
    authors = tuple(sorted({d.recipient_id for d in sharing if d.message_id == last.message_id}))
    await deps.replies.publish(
        Reply(
            reply_id=reply_id_for(INBOUND_SMS, message_sid),
            conversation_id=last.conversation_id,
            author_ids=authors,
            authors_certain=len(authors) == 1,
            channel=Channel.SMS,
            text=body.strip()[: deps.policy.max_chars],
            received_at=received_at,
            provider="twilio",
            provider_message_id=message_sid,
        )
    )
    # Remembered after publishing: a retry after a crash publishes again, with the same
    # reply_id, which readers drop.
    await store.remember_provider_event(INBOUND_SMS, message_sid)
    return ReplyResult(ReplyOutcome.PUBLISHED)


async def _how_to_answer(phone: str, deps: ReplyDependencies) -> str | None:
    """For someone we know but sent nothing lately: how to answer in the app, in their
    language. Unknown numbers get no answer at all."""
    people = await deps.store.recipients_using(Channel.SMS, phone)
    if not people:
        return None
    district = await deps.store.district(people[0].district_id)
    if district is None:
        return None
    language = choose_language(people[0].language, district)
    wording = deps.catalogs.wording(language)
    return wording.gettext("To reply, open the conversation in the {district} app.").format(
        district=district.name
    )

"""Who gets what: the contract's resolution rules 1-6, as pure functions.

Every input is an argument, so each rule can be read and tested on its own. The rules'
numbers refer to "Resolution rules" in shared/spec/contract.md.
"""

from __future__ import annotations

from collections.abc import Mapping

from notifier.domain.model import (
    Channel,
    ContactPoint,
    ContactStatus,
    DeliveryStatus,
    District,
    Reason,
    Recipient,
    Route,
    SendRequest,
)
from notifier.domain.values import value_type

ContactPoints = Mapping[tuple[Channel, str], ContactPoint]
"""Known contact point states by (channel, address); an address not in it is active."""


@value_type
class ChannelChoice:
    channel: Channel
    route: Route


@value_type
class PlannedDelivery:
    """One delivery to make, or one decided not to make (``outcome`` set, nothing is sent)."""

    channel: Channel
    address: str
    route: Route
    fallback_from: Channel | None = None
    outcome: DeliveryStatus | None = None
    reason: Reason | None = None

    @property
    def needs_sending(self) -> bool:
        return self.outcome is None


@value_type
class RecipientPlan:
    recipient: Recipient
    language: str
    deliveries: tuple[PlannedDelivery, ...]


@value_type
class MessageText:
    text: str
    language: str
    in_original_language: bool
    """True when the recipient's language was wanted but only the original text is at hand."""


def choose_channel(recipient: Recipient, district: District) -> ChannelChoice | None:
    """Rule 1. ``None`` means the person has no SMS or email to reach: the app only."""

    def reachable(channel: Channel) -> bool:
        return recipient.address_for(channel) is not None

    preferred = recipient.preferred_channel
    if preferred is not None and reachable(preferred):
        return ChannelChoice(preferred, Route.PREFERRED)
    role_channel = district.role_channels.get(recipient.role)
    if role_channel is not None and reachable(role_channel):
        return ChannelChoice(role_channel, Route.ROLE_DEFAULT)
    if recipient.phone and recipient.email:
        return ChannelChoice(district.default_channel, Route.DISTRICT_DEFAULT)
    if recipient.email:
        return ChannelChoice(Channel.EMAIL, Route.ONLY_CONTACT)
    if recipient.phone:
        return ChannelChoice(Channel.SMS, Route.ONLY_CONTACT)
    return None


def other_channel(channel: Channel) -> Channel | None:
    """SMS for email and email for SMS; the app has no other."""
    return {Channel.SMS: Channel.EMAIL, Channel.EMAIL: Channel.SMS}.get(channel)


def alternate_channel(recipient: Recipient, channel: Channel) -> Channel | None:
    """Rule 2: the other of SMS and email, when the person has that contact point."""
    other = other_channel(channel)
    if other is None or recipient.address_for(other) is None:
        return None
    return other


def contact_point(points: ContactPoints, channel: Channel, address: str) -> ContactPoint:
    return points.get((channel, address)) or ContactPoint(channel, address)


def plan_recipient(
    recipient: Recipient, district: District, points: ContactPoints, *, muted: bool = False
) -> RecipientPlan:
    """Rules 1-3 and 6: the notification delivery (or why there is none) and the inbox copy.
    Someone who muted the conversation gets the inbox copy only (the text or email is
    recorded as suppressed, reason muted)."""
    language = choose_language(recipient.language, district)
    inbox_route = Route.APP_INBOX
    deliveries: list[PlannedDelivery] = []

    choice = choose_channel(recipient, district)
    if choice is None:
        inbox_route = Route.APP_ONLY
    elif choice.channel is Channel.APP:
        inbox_route = choice.route
    elif muted:
        address = recipient.address_for(choice.channel)
        assert address is not None
        deliveries.append(_not_sent(choice, address, DeliveryStatus.SUPPRESSED, Reason.MUTED))
    else:
        deliveries.extend(_external_deliveries(recipient, choice, points))

    deliveries.append(PlannedDelivery(Channel.APP, recipient.id, inbox_route))
    return RecipientPlan(recipient, language, tuple(deliveries))


def _external_deliveries(
    recipient: Recipient, choice: ChannelChoice, points: ContactPoints
) -> list[PlannedDelivery]:
    address = recipient.address_for(choice.channel)
    assert address is not None, "choose_channel only picks channels the person can be reached on"
    primary = contact_point(points, choice.channel, address)
    if primary.usable:
        return [PlannedDelivery(choice.channel, address, choice.route)]

    # Rule 3: a failing or opted-out address is skipped for the alternate, until reset.
    other = alternate_channel(recipient, choice.channel)
    if other is not None:
        other_address = recipient.address_for(other)
        assert other_address is not None
        if contact_point(points, other, other_address).usable:
            instead = PlannedDelivery(
                other,
                other_address,
                Route.CONTACT_POINT_FAILING,
                fallback_from=choice.channel,
            )
            if primary.status is ContactStatus.OPTED_OUT:
                # The person said STOP: recorded as suppressed, so the core and support see
                # the opt-out beside the email that went instead.
                return [
                    _not_sent(choice, address, DeliveryStatus.SUPPRESSED, Reason.OPTED_OUT),
                    instead,
                ]
            return [instead]

    if primary.status is ContactStatus.OPTED_OUT:
        return [_not_sent(choice, address, DeliveryStatus.SUPPRESSED, Reason.OPTED_OUT)]
    return [
        _not_sent(choice, address, DeliveryStatus.SKIPPED, primary.reason or Reason.UNREACHABLE)
    ]


def fallback_channel(channel: Channel, fallback_from: Channel | None) -> Channel | None:
    """Rule 2 after sending: the channel a delivery on ``channel`` fails over to; none for
    a delivery that is itself a fallback (once, never back and forth) or for the app."""
    if fallback_from is not None:
        return None
    return other_channel(channel)


def plan_fallback(
    failed: Channel, point: ContactPoint, route: Route, *, muted: bool
) -> PlannedDelivery:
    """Rules 2, 3 and 6 after sending: the same message again on the other channel, to the
    address ``point`` is the state of; recorded as not sent when the person muted the
    conversation (suppressed), or when that address is opted out (suppressed) or failing
    (skipped, with its reason), the app inbox being then the last resort."""

    def not_sent(outcome: DeliveryStatus, reason: Reason | None) -> PlannedDelivery:
        return PlannedDelivery(point.channel, point.address, route, failed, outcome, reason)

    if muted:
        return not_sent(DeliveryStatus.SUPPRESSED, Reason.MUTED)
    if point.status is ContactStatus.OPTED_OUT:
        return not_sent(DeliveryStatus.SUPPRESSED, Reason.OPTED_OUT)
    if point.status is ContactStatus.FAILING:
        return not_sent(DeliveryStatus.SKIPPED, point.reason)
    return PlannedDelivery(point.channel, point.address, route, fallback_from=failed)


def _not_sent(
    choice: ChannelChoice, address: str, outcome: DeliveryStatus, reason: Reason
) -> PlannedDelivery:
    return PlannedDelivery(choice.channel, address, choice.route, outcome=outcome, reason=reason)


def choose_language(wanted: str | None, district: District) -> str:
    """Rule 4: the person's language when the district offers it, else the district's."""
    if wanted:
        for offered in district.languages:
            if offered.casefold() == wanted.casefold():
                return offered
    return district.default_language


def message_text(request: SendRequest, language: str) -> MessageText | None:
    """Rule 4 for the body: the original or a supplied translation.

    ``None`` means a translator is needed; callers that have none fall back to
    ``original_text``.
    """
    if _same_language(language, request.language):
        return MessageText(request.body, language, in_original_language=False)
    for supplied_language, text in request.translations.items():
        if _same_language(language, supplied_language):
            return MessageText(text, language, in_original_language=False)
    return None


def original_text(request: SendRequest) -> MessageText:
    return MessageText(request.body, request.language, in_original_language=True)


def _same_language(left: str, right: str) -> bool:
    return left.casefold() == right.casefold()


def recipients_to_notify(request: SendRequest) -> tuple[str, ...]:
    """The listed recipients once each, in order, without the sender (never told of their
    own message)."""
    seen: dict[str, None] = {}
    for recipient_id in request.recipient_ids:
        if recipient_id != request.sender.id:
            seen.setdefault(recipient_id, None)
    return tuple(seen)

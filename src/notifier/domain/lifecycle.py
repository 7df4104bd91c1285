"""What happens after sending: a provider's report, classified, moves a delivery forward and
may change the state of its address and send the message again on the other channel.

Pure: the vendor tables live in ``classification``; this module holds the shapes they produce
and the rules that apply them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType

from notifier.domain.model import (
    Channel,
    ContactPoint,
    ContactStatus,
    DeliveryStatus,
    Reason,
    Route,
)
from notifier.domain.values import value_type


class ContactEffect(StrEnum):
    """What a provider report says about the address itself (not just this message)."""

    NONE = "none"
    FAILING = "failing"
    """Mark the address failing with the report's reason: new messages go to the alternate."""
    FAILING_IF_REPEATED = "failing_if_repeated"
    """One occurrence fails over this message only; repeated ones mark the address failing."""
    OPTED_OUT = "opted_out"
    WORKS = "works"
    """Proof the address works again (a tracked click): the person's own reset."""


@value_type
class Classification:
    """A vendor report in the contract's terms."""

    status: DeliveryStatus | None
    """The delivery's new status; None when the report doesn't change it (an open, a click)."""
    reason: Reason | None = None
    contact: ContactEffect = ContactEffect.NONE
    fail_over: bool = False
    """Send this message again on the alternate channel."""
    contact_reason: Reason | None = None
    """The address's failing reason when it differs from the message's (e.g. a message
    failed as deferred_too_long marks its address mailbox_full)."""

    @property
    def address_reason(self) -> Reason | None:
        return self.contact_reason or self.reason


@value_type
class ProviderReport:
    """One thing a provider (or our own timer) tells about a delivery or an address."""

    provider: str
    channel: Channel
    classification: Classification
    occurred_at: datetime
    event_key: str | None = None
    """The provider's id of this report, to ignore it when it comes again."""
    delivery_id: str | None = None
    provider_message_id: str | None = None
    address: str | None = None


IGNORED = Classification(status=None)

_RANK = {
    DeliveryStatus.QUEUED: 0,
    DeliveryStatus.SENT: 1,
    DeliveryStatus.DEFERRED: 2,
    DeliveryStatus.DELIVERED: 3,
    DeliveryStatus.BOUNCED: 3,
    DeliveryStatus.FAILED: 3,
    DeliveryStatus.SUPPRESSED: 3,
    DeliveryStatus.SKIPPED: 3,
}


def moves_forward(current: DeliveryStatus, new: DeliveryStatus) -> bool:
    """Statuses only move forward (contract): a late ``delivered`` after a bounce, a repeated
    ``deferred`` or a ``sent`` after ``delivered`` change nothing. Final states are final."""
    if new is DeliveryStatus.DEFERRED and current is DeliveryStatus.DEFERRED:
        return False
    return _RANK[new] > _RANK[current]


FAILOVER_ROUTES = {
    DeliveryStatus.BOUNCED: Route.FAILOVER_BOUNCE,
    DeliveryStatus.FAILED: Route.FAILOVER_REJECTED,
}


def failover_route(status: DeliveryStatus, reason: Reason | None) -> Route:
    """Why the fallback delivery exists, as support staff will read it."""
    if reason is Reason.DEFERRED_TOO_LONG:
        return Route.FAILOVER_DEFERRED_TOO_LONG
    if reason is Reason.PROVIDER_ERROR:
        return Route.FAILOVER_PROVIDER_ERROR
    return FAILOVER_ROUTES.get(status, Route.FAILOVER_BOUNCE)


REFUSAL_EFFECTS: Mapping[Reason, ContactEffect] = MappingProxyType(
    {
        Reason.INVALID_ADDRESS: ContactEffect.FAILING,
        Reason.BLOCKED: ContactEffect.FAILING,
        Reason.OPTED_OUT: ContactEffect.OPTED_OUT,
        Reason.UNREACHABLE: ContactEffect.FAILING_IF_REPEATED,
    }
)
"""What a provider's refusal of the send itself says about the address, by the refusal's
reason; any other reason (a provider error) says nothing about it."""


def refused_send(reason: Reason | None) -> Classification | None:
    """A send the provider refused outright, as if it had reported it: failed, failing over,
    with what the reason says about the address; None when it says nothing about it."""
    effect = REFUSAL_EFFECTS.get(reason) if reason is not None else None
    if effect is None:
        return None
    return Classification(DeliveryStatus.FAILED, reason, effect, fail_over=True)


def condemns_address(classification: Classification) -> bool:
    """The report fails its message over because the address itself is broken (failing or
    opted out): the same message's other deliveries to it won't arrive either."""
    return classification.fail_over and classification.contact in (
        ContactEffect.FAILING,
        ContactEffect.OPTED_OUT,
    )


def counts_a_strike(classification: Classification) -> bool:
    """The report is one strike towards marking the address failing."""
    return classification.contact is ContactEffect.FAILING_IF_REPEATED


@value_type
class Transition:
    to: ContactStatus
    from_statuses: frozenset[ContactStatus]


ADDRESS_TRANSITIONS: Mapping[ContactEffect, Transition] = MappingProxyType(
    {
        # Failing only from active: an opted-out address stays opted out, and a failing one
        # keeps the reason and time it first failed with.
        ContactEffect.FAILING: Transition(ContactStatus.FAILING, frozenset({ContactStatus.ACTIVE})),
        ContactEffect.OPTED_OUT: Transition(
            ContactStatus.OPTED_OUT, frozenset({ContactStatus.ACTIVE, ContactStatus.FAILING})
        ),
        # A tracked click proves a failing mailbox works; it doesn't undo an opt-out.
        ContactEffect.WORKS: Transition(ContactStatus.ACTIVE, frozenset({ContactStatus.FAILING})),
    }
)
"""The contact point state machine: what each effect moves an address to, and from which
statuses (contract: "Contact point status"). From any other status the effect does nothing."""


@value_type
class AddressChange:
    """What a report does to its address; nothing when both fields are empty."""

    record: ContactPoint | None = None
    """The address's new state, to store as it is."""
    person_reset: bool = False
    """Back to active by the person's own doing (a tracked click): a reset like support's,
    audited and clearing the provider's suppression, rather than a state to store."""


def address_change(
    current: ContactPoint,
    classification: Classification,
    *,
    strikes: int,
    strikes_to_fail: int,
    occurred_at: datetime,
) -> AddressChange:
    """What ``classification``, reported at ``occurred_at``, does to the address in state
    ``current``. ``strikes`` counts the address's strikes with this report's own (see
    counts_a_strike): a repeated failure marks it failing at ``strikes_to_fail``. A delivery
    to an active address clears the strikes counted so far."""
    effect = classification.contact
    if effect is ContactEffect.FAILING_IF_REPEATED:
        if strikes < strikes_to_fail:
            return AddressChange()
        effect = ContactEffect.FAILING
    transition = ADDRESS_TRANSITIONS.get(effect)
    if transition is not None and current.status in transition.from_statuses:
        if effect is ContactEffect.WORKS:
            return AddressChange(person_reset=True)
        return AddressChange(
            ContactPoint(
                current.channel,
                current.address,
                transition.to,
                classification.address_reason,
                occurred_at,
            )
        )
    if (
        classification.status is DeliveryStatus.DELIVERED
        and current.strikes
        and current.status is ContactStatus.ACTIVE
    ):
        return AddressChange(ContactPoint(current.channel, current.address))
    return AddressChange()


def deferred_too_long(waited_reason: Reason | None) -> Classification:
    """Our timer's report on a delivery that stayed deferred (or only sent) past its limit:
    failed as deferred_too_long and failing over; one strike against the address, as full
    when the deferrals said the mailbox was, else as unreachable."""
    return Classification(
        status=DeliveryStatus.FAILED,
        reason=Reason.DEFERRED_TOO_LONG,
        contact=ContactEffect.FAILING_IF_REPEATED,
        fail_over=True,
        contact_reason=(
            Reason.MAILBOX_FULL if waited_reason is Reason.MAILBOX_FULL else Reason.UNREACHABLE
        ),
    )


def awaiting_final_status(
    *, sms_final_status_expected: bool
) -> tuple[tuple[Channel, DeliveryStatus], ...]:
    """The (channel, status) of deliveries still waiting for a final status: an email only
    deferred, and a text only sent when status callbacks are configured (without them every
    text would look overdue)."""
    waiting: tuple[tuple[Channel, DeliveryStatus], ...] = (
        (Channel.EMAIL, DeliveryStatus.DEFERRED),
    )
    if sms_final_status_expected:
        waiting += ((Channel.SMS, DeliveryStatus.SENT),)
    return waiting


def is_overdue(sent_at: datetime | None, limit: timedelta, now: datetime) -> bool:
    """Whether a delivery sent at ``sent_at`` has waited past ``limit`` for a final status."""
    return sent_at is not None and sent_at <= now - limit

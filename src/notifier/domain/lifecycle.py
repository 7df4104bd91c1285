"""What happens after sending: a provider's report, classified, moves a delivery forward and
may change the state of its address and send the message again on the other channel.

Pure: the vendor tables live in ``classification``; this module holds the shapes they produce
and the rules that apply them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from notifier.domain.model import Channel, ContactStatus, DeliveryStatus, Reason, Route


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


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
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


def contact_status_for(effect: ContactEffect) -> ContactStatus | None:
    return {
        ContactEffect.FAILING: ContactStatus.FAILING,
        ContactEffect.OPTED_OUT: ContactStatus.OPTED_OUT,
        ContactEffect.WORKS: ContactStatus.ACTIVE,
    }.get(effect)

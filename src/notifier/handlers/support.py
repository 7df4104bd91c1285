"""What support staff look at: a person with their addresses and recent deliveries, an
address and who uses it, a message's deliveries — each delivery with its history and the
plain-language reason for its channel. The API and the console render the same views."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from notifier.domain.explanations import contact_point_badge, explain_route
from notifier.domain.model import Channel, ContactPoint, District, Recipient
from notifier.domain.records import DeliveryRecord, StoredEvent
from notifier.domain.resolution import contact_point
from notifier.domain.values import value_type
from notifier.ports import ContactPoints, DeliveryHistory, DeliveryLedger, Directory

DEFAULT_TIMEZONE = "UTC"


@value_type
class SupportReads:
    """What the support views read."""

    directory: Directory
    contact_points: ContactPoints
    ledger: DeliveryLedger
    history: DeliveryHistory


@value_type
class ContactPointView:
    point: ContactPoint
    badge: str
    """e.g. "failing: mailbox full since Nov 3, 07:42"."""


@value_type
class DeliveryView:
    record: DeliveryRecord
    history: tuple[StoredEvent, ...]
    why: str
    """e.g. "email failing since Nov 3, 07:42 — mailbox full — so sent by text"."""


@value_type
class RecipientView:
    recipient: Recipient
    contact_points: tuple[ContactPointView, ...]
    deliveries: tuple[DeliveryView, ...]


@value_type
class AddressView:
    contact_point: ContactPointView
    used_by: tuple[Recipient, ...]
    deliveries: tuple[DeliveryView, ...]


async def recipient_view(
    reads: SupportReads, recipient_id: str, *, limit: int = 50, offset: int = 0
) -> RecipientView | None:
    recipient = (await reads.directory.recipients([recipient_id])).get(recipient_id)
    if recipient is None:
        return None
    timezone = await _timezone(reads, recipient.district_id)
    keys = [
        (channel, address)
        for channel, address in ((Channel.SMS, recipient.phone), (Channel.EMAIL, recipient.email))
        if address
    ]
    points = await reads.contact_points.contact_points(keys)
    records = await reads.history.recent_deliveries(
        recipient_id=recipient_id, limit=limit, offset=offset
    )
    return RecipientView(
        recipient=recipient,
        contact_points=tuple(
            _point_view(contact_point(points, channel, address), timezone)
            for channel, address in keys
        ),
        deliveries=await _delivery_views(reads, records, timezone),
    )


async def address_view(
    reads: SupportReads, channel: Channel, address: str, *, limit: int = 50, offset: int = 0
) -> AddressView | None:
    users = await reads.directory.recipients_using(channel, address)
    points = await reads.contact_points.contact_points([(channel, address)])
    if not users and (channel, address) not in points:
        return None
    timezone = await _timezone(reads, users[0].district_id) if users else DEFAULT_TIMEZONE
    records = await reads.history.recent_deliveries(
        channel=channel, address=address, limit=limit, offset=offset
    )
    return AddressView(
        contact_point=_point_view(contact_point(points, channel, address), timezone),
        used_by=tuple(users),
        deliveries=await _delivery_views(reads, records, timezone),
    )


async def message_deliveries(
    reads: SupportReads, message_id: str, *, limit: int = 100, offset: int = 0
) -> tuple[DeliveryView, ...]:
    records = await reads.ledger.deliveries_of_message(message_id, limit=limit, offset=offset)
    district_id = next((r.district_id for r in records if r.district_id), None)
    return await _delivery_views(reads, records, await _timezone(reads, district_id))


async def _delivery_views(
    reads: SupportReads, records: Sequence[DeliveryRecord], timezone: str
) -> tuple[DeliveryView, ...]:
    history = await reads.history.event_history(records)
    people = await reads.directory.recipients({r.recipient_id for r in records if r.fallback_from})
    replaced = {
        record.delivery_id: _replaced(record, records, people)
        for record in records
        if record.fallback_from is not None
    }
    # The address each fallback stood in for, in its current state.
    points = await reads.contact_points.contact_points(
        (point_key for _, point_key in replaced.values() if point_key is not None)
    )
    views = []
    for record in records:
        replaced_record, point_key = replaced.get(record.delivery_id, (None, None))
        views.append(
            DeliveryView(
                record=record,
                history=tuple(history.get(record.delivery_id, ())),
                why=explain_route(
                    record.route,
                    record.channel,
                    record.fallback_from,
                    timezone=timezone,
                    replaced_point=points.get(point_key) if point_key else None,
                    replaced_reason=replaced_record.reason if replaced_record else None,
                ),
            )
        )
    return tuple(views)


def _replaced(
    record: DeliveryRecord,
    records: Sequence[DeliveryRecord],
    people: Mapping[str, Recipient],
) -> tuple[DeliveryRecord | None, tuple[Channel, str] | None]:
    """The delivery a fallback replaced (when there was one) and the address it stood in
    for (from that delivery, else from the person's profile)."""
    channel = record.fallback_from
    assert channel is not None
    earlier = next(
        (
            other
            for other in records
            if other.message_id == record.message_id
            and other.recipient_id == record.recipient_id
            and other.channel is channel
        ),
        None,
    )
    person = people.get(record.recipient_id)
    address = earlier.address if earlier else person.address_for(channel) if person else None
    return earlier, (channel, address) if address else None


def _point_view(point: ContactPoint, timezone: str) -> ContactPointView:
    return ContactPointView(point, contact_point_badge(point, timezone))


async def _timezone(reads: SupportReads, district_id: str | None) -> str:
    district: District | None = await reads.directory.district(district_id) if district_id else None
    return district.timezone if district else DEFAULT_TIMEZONE

"""Deterministic ids: the same delivery or state change always gets the same id, so a
redelivered request finds its earlier work and consumers can drop repeated events."""

from __future__ import annotations

import uuid

from notifier.domain.model import Channel, DeliveryStatus

_NAMESPACE = uuid.UUID("6f1d3c1e-4f2b-5a7e-9c0d-2b8e1f4a7c55")


def delivery_id_for(message_id: str, recipient_id: str, channel: Channel) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"delivery\x1f{message_id}\x1f{recipient_id}\x1f{channel}"))


def event_id_for(delivery_id: str, status: DeliveryStatus) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"event\x1f{delivery_id}\x1f{status}"))

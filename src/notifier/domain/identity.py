"""Deterministic ids: the same delivery or state change always gets the same id, so a
redelivered request finds its earlier work and consumers can drop repeated events."""

from __future__ import annotations

import hashlib
import uuid

from notifier.domain.model import Channel, DeliveryStatus

_NAMESPACE = uuid.UUID("6f1d3c1e-4f2b-5a7e-9c0d-2b8e1f4a7c55")


def delivery_id_for(message_id: str, recipient_id: str, channel: Channel) -> str:
    return _uuid5(f"delivery\x1f{message_id}\x1f{recipient_id}\x1f{channel}")


def event_id_for(delivery_id: str, status: DeliveryStatus) -> str:
    return _uuid5(f"event\x1f{delivery_id}\x1f{status}")


def _uuid5(name: str) -> str:
    """``str(uuid.uuid5(_NAMESPACE, name))`` without building a UUID object, which costs
    twice the hashing; several ids are made for every delivery."""
    digest = bytearray(
        hashlib.sha1(_NAMESPACE.bytes + name.encode(), usedforsecurity=False).digest()
    )
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    hex_ = digest[:16].hex()
    return f"{hex_[:8]}-{hex_[8:12]}-{hex_[12:16]}-{hex_[16:20]}-{hex_[20:32]}"

"""Use cases of the directory read model: profiles and district settings from Kafka."""

from __future__ import annotations

from notifier.domain.model import ConversationState, District, Recipient
from notifier.ports import Store


async def apply_recipient(recipient: Recipient, store: Store) -> bool:
    """A directory profile: stored unless the stored one is newer (events come out of order)."""
    return await store.upsert_recipient(recipient)


async def remove_recipient(recipient_id: str, store: Store) -> bool:
    return await store.delete_recipient(recipient_id)


async def apply_district(district: District, store: Store) -> None:
    await store.upsert_district(district)


async def remove_district(district_id: str, store: Store) -> bool:
    return await store.delete_district(district_id)


async def apply_conversation_state(state: ConversationState, store: Store) -> bool:
    return await store.upsert_conversation_state(state)


async def remove_conversation_state(conversation_id: str, store: Store) -> bool:
    return await store.delete_conversation_state(conversation_id)

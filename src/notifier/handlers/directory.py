"""Use cases of the directory read model: profiles and district settings from Kafka."""

from __future__ import annotations

from notifier.domain.model import ConversationState, District, Recipient
from notifier.ports import DirectoryUpdates


async def apply_recipient(recipient: Recipient, directory: DirectoryUpdates) -> bool:
    """A directory profile: stored unless the stored one is newer (events come out of order)."""
    return await directory.upsert_recipient(recipient)


async def remove_recipient(recipient_id: str, directory: DirectoryUpdates) -> bool:
    return await directory.delete_recipient(recipient_id)


async def apply_district(district: District, directory: DirectoryUpdates) -> None:
    await directory.upsert_district(district)


async def remove_district(district_id: str, directory: DirectoryUpdates) -> bool:
    return await directory.delete_district(district_id)


async def apply_conversation_state(state: ConversationState, directory: DirectoryUpdates) -> bool:
    return await directory.upsert_conversation_state(state)


async def remove_conversation_state(conversation_id: str, directory: DirectoryUpdates) -> bool:
    return await directory.delete_conversation_state(conversation_id)

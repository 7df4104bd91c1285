"""The app inbox: every recipient's copy of the message, which feeds the unread bubble."""

from __future__ import annotations

from notifier.adapters.store import SqlStore
from notifier.domain.model import OutboundMessage
from notifier.ports import ProviderReceipt


class AppInbox:
    def __init__(self, store: SqlStore) -> None:
        self._store = store

    @property
    def provider(self) -> str:
        return "app-inbox"

    async def send(self, message: OutboundMessage) -> ProviderReceipt:
        entry_id = await self._store.write_inbox(message)
        return ProviderReceipt(self.provider, entry_id)

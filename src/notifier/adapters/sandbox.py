"""Stand-in for a provider that has no credentials: records exactly what would have been sent
(to, from, rendered text, language) in the store's sandbox outbox and in the log, so a new
user and the demo see real output without an account."""

from __future__ import annotations

import logging

from notifier.adapters.sql.sandbox_outbox import SqlSandboxOutbox
from notifier.domain.model import Channel, OutboundMessage
from notifier.ports import ProviderReceipt

log = logging.getLogger(__name__)


class SandboxSender:
    def __init__(self, channel: Channel, outbox: SqlSandboxOutbox) -> None:
        self._channel = channel
        self._outbox = outbox

    @property
    def provider(self) -> str:
        return f"sandbox-{self._channel}"

    async def send(self, message: OutboundMessage) -> ProviderReceipt:
        entry = await self._outbox.record_sandbox_send(message)
        text = message.sms.body if message.sms else message.email.subject if message.email else ""
        # The outbox table keeps what went out; the text itself only at DEBUG (no message
        # bodies in logs at INFO).
        log.debug(
            "sandbox %s to %s from %s in %s: %s",
            self._channel,
            message.to,
            message.sender_address,
            message.language,
            text,
        )
        return ProviderReceipt(self.provider, f"sandbox-{entry}")

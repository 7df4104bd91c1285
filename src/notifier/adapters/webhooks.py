"""What every provider's webhook verifier raises, so that the HTTP edge maps one error to 403."""

from __future__ import annotations


class WebhookRejected(Exception):
    """A webhook request is not proven to come from the provider (a signature or timestamp
    header missing, malformed, stale or not matching): answer 403 and change nothing.
    ``reason`` says which check failed, for the log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

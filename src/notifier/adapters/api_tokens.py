"""Static API tokens: configured as SHA-256 hashes in settings, or created with
`notifier tokens create` and kept (hashed) in the store. The token itself is never stored."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from datetime import datetime

from notifier.config import ApiToken
from notifier.domain.records import StoredToken
from notifier.ports import Principal, TokenStore

TOKEN_PREFIX = "ntf_"  # noqa: S105 (a prefix, not a secret)
"""Marks our tokens, so they're told apart from OIDC JWTs and found by secret scanners."""


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


class StaticTokens:
    """The BearerVerifier for configured and stored tokens."""

    def __init__(self, configured: Sequence[ApiToken], stored: TokenStore) -> None:
        self._configured = list(configured)
        self._stored = stored

    async def principal(self, token: str) -> Principal | None:
        digest = token_digest(token)
        # Every configured hash is compared in constant time, whichever matches.
        match = None
        for candidate in self._configured:
            if hmac.compare_digest(candidate.sha256, digest):
                match = candidate
        if match is not None:
            return Principal(match.name, match.scope, match.recipient_id)
        stored = await self._stored.api_token(digest)
        if stored is None:
            return None
        return Principal(stored.name, stored.scope, stored.recipient_id)

    async def create(
        self, name: str, scope: str, recipient_id: str | None, now: datetime
    ) -> tuple[str, StoredToken]:
        """A new token, returned once; only its hash is kept."""
        token = new_token()
        stored = StoredToken(name, scope, token_digest(token), recipient_id, now)
        await self._stored.add_api_token(stored)
        return token, stored

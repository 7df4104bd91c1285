"""Bearer tokens with scopes for /api/. Only SHA-256 hashes of tokens are configured; a
token's name is what the audit log records."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from fastapi import HTTPException, Request, status

from notifier.config import ApiToken

SCOPES = ("support", "self-service", "admin")


@dataclass(frozen=True, slots=True)
class Caller:
    name: str
    scope: str
    recipient_id: str | None
    """The one recipient a self-service token acts for."""


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def authenticate(request: Request, tokens: list[ApiToken], allowed: tuple[str, ...]) -> Caller:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="a bearer token is required",
            headers={"WWW-Authenticate": "Bearer"},
        )
    digest = token_digest(token.strip())
    # Compare against every configured hash in constant time; stop only at the end.
    found = None
    for candidate in tokens:
        if hmac.compare_digest(candidate.sha256, digest):
            found = candidate
    if found is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="unknown token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if found.scope not in allowed:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail=f"this needs a scope of {', '.join(allowed)}; the token's is {found.scope}",
        )
    return Caller(found.name, found.scope, found.recipient_id)

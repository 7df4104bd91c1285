"""Bearer tokens with scopes for /api/ and the console, and a rate limit per caller.

Verifiers are tried in order (static tokens, then OIDC JWTs); the first that accepts the token
names the principal. No token or an unknown one is 401 on the API (the console's sign-in
form); a known one without the needed scope is 403, one over its rate 429. Each changes
nothing."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import Request

from notifier.domain.model import Scope
from notifier.ports import BearerVerifier, Principal
from notifier.rate_limit import RateLimiter

# Tuples, in the order a refusal names them.
SUPPORT = (Scope.SUPPORT, Scope.ADMIN)
ANYONE = (Scope.SUPPORT, Scope.ADMIN, Scope.SELF_SERVICE)
ADMIN = (Scope.ADMIN,)


def bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


async def principal_for(token: str, verifiers: Sequence[BearerVerifier]) -> Principal | None:
    for verifier in verifiers:
        found = await verifier.principal(token)
        if found is not None:
            return found
    return None


class NoToken(Exception):
    """The request carries no bearer token."""


class UnknownToken(Exception):
    """No verifier accepts the token: unknown, revoked, expired or forged."""


class ScopeRefused(Exception):
    """A known caller whose scope doesn't allow this."""

    def __init__(self, principal: Principal, allowed: tuple[Scope, ...]) -> None:
        super().__init__(f"{principal.scope or 'no scope'} is not one of {', '.join(allowed)}")
        self.principal = principal
        self.allowed = allowed


async def admit(
    token: str | None,
    verifiers: Sequence[BearerVerifier],
    limiter: RateLimiter,
    allowed: tuple[Scope, ...],
) -> Principal:
    """The caller ``token`` proves, allowed here and within its rate: the checks, in their
    order, of every edge that takes bearer tokens (the API and the console), each of which
    answers the refusals in its own form. Raises NoToken, UnknownToken, ScopeRefused or
    RateLimited; a refused caller uses none of its rate."""
    if token is None:
        raise NoToken
    principal = await principal_for(token, verifiers)
    if principal is None:
        raise UnknownToken
    if principal.scope not in allowed:
        raise ScopeRefused(principal, allowed)
    await limiter.take(principal.name)
    return principal

"""Bearer tokens with scopes for /api/ and the console, and a rate limit per caller.

Verifiers are tried in order (static tokens, then OIDC JWTs); the first that accepts the token
names the principal. No token or an unknown one is 401; a known one without the needed scope
is 403. Both answer with the JSON error shape and change nothing."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import HTTPException, Request, status

from notifier.domain.model import Scope
from notifier.ports import BearerVerifier, Principal

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


async def authenticate(
    request: Request, verifiers: Sequence[BearerVerifier], allowed: tuple[Scope, ...]
) -> Principal:
    token = bearer_token(request)
    if token is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="a bearer token is required",
            headers={"WWW-Authenticate": "Bearer"},
        )
    principal = await principal_for(token, verifiers)
    if principal is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="unknown or invalid token",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    require_scope(principal, allowed)
    return principal


def require_scope(principal: Principal, allowed: tuple[Scope, ...]) -> None:
    if principal.scope not in allowed:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail=f"this needs a scope of {', '.join(allowed)}; "
            + (
                f"the token's is {principal.scope}"
                if principal.scope
                else "the token grants none of notifier's scopes"
            ),
        )

"""Bearer tokens that are JWTs issued by an OpenID Connect provider (Keycloak, Entra ID,
Auth0, …): signature checked against the provider's published keys (its JWKS), then issuer,
audience and times, with PyJWT.

Where it sits among the verifiers: try the static-token verifier first, then this one. A
static token has no dots, so ``OidcVerifier.principal`` turns it down without any work; and
a JWT never matches a static token's hash. The order only saves the hashing of a JWT.

What each outcome means at the edge:

- None: not a JWT, or a JWT that isn't proven (bad signature, expired, not yet valid, wrong
  issuer or audience, an algorithm we don't take, a key we don't know, or no keys because
  the JWKS can't be fetched). The edge answers 401, the same as for an unknown token; the
  reason is logged at INFO here (never the token).
- A ``Principal`` whose ``scope`` is "": the provider vouches for the caller, but the token
  grants none of our scopes (or self-service without the recipient it acts for). The edge's
  scope check answers 403, as for any token whose scope doesn't allow the call.
- Otherwise the highest of admin > support > self-service among the token's scopes.

Keys are fetched with the service's shared httpx client (PyJWKClient would fetch with
blocking urllib on the event loop) and cached for ``jwks_cache_seconds``. A token signed
with a key id not in the cache refetches at once, so a rotation is picked up, but at most
once per ``jwks_min_refresh_seconds``: made-up key ids can't make us fetch per request. When
a refetch fails the last keys fetched stay in use (an outage of the provider's JWKS endpoint
doesn't lock everyone out); a JWKS that lists no usable key replaces them (the provider
withdrew its keys).

``exp``, ``nbf`` and ``iat`` are checked by PyJWT against the system time (it takes no
clock), with ``leeway_seconds`` for clock skew; the injected clock times the key cache.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Any

import httpx
import jwt
import orjson

from notifier.domain.model import Scope
from notifier.ports import Clock, Principal

log = logging.getLogger(__name__)

NAME_PREFIX = "oidc:"

SCOPE_VALUES: Mapping[str, Scope] = MappingProxyType(
    {
        **{scope.value: scope for scope in Scope},
        **{f"notifier:{scope.value}": scope for scope in Scope},
    }
)
"""A token's scope values that grant one of ours: bare, or prefixed for a provider shared
with other services."""

SCOPE_RANK = (Scope.ADMIN, Scope.SUPPORT, Scope.SELF_SERVICE)
"""Highest first: a token with several of our scopes gets the highest."""

SCP_CLAIM = "scp"
"""Where Entra ID and Okta put scopes, as a list; read when the configured claim is absent."""

# Three base64url segments (JWS compact form; the signature is empty for alg "none", refused
# later). A JWE has five and is not for us; a static token (token_urlsafe) has no dots.
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")

_SYMMETRIC_OR_NONE = re.compile(r"(?i)^(HS\d+|none)$")


class OidcVerifier:
    """Accepts JWTs from one issuer for one audience; a ``BearerVerifier``."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        jwks_url: str,
        http_client: httpx.AsyncClient,
        clock: Clock,
        scope_claim: str = "scope",
        recipient_claim: str = "notifier_recipient_id",
        name_claims: Sequence[str] = ("email", "preferred_username", "sub"),
        algorithms: Sequence[str] = ("RS256", "ES256"),
        leeway_seconds: float = 30,
        jwks_cache_seconds: float = 300,
        jwks_min_refresh_seconds: float = 60,
        timeout_seconds: float = 5,
    ) -> None:
        """``http_client`` is the caller's: this never closes it. ``algorithms`` are the
        only ones accepted, whatever a token's header says; symmetric ones are refused here
        because a JWKS holds public keys, and an HS* check with one as the secret is the
        classic forgery."""
        refused = [name for name in algorithms if _SYMMETRIC_OR_NONE.match(name)]
        if refused or not algorithms:
            raise ValueError(f"OIDC needs asymmetric signature algorithms, not {refused}")
        if not name_claims:
            raise ValueError("at least one claim must name the caller")
        self._issuer = issuer
        self._audience = audience
        self._jwks_url = jwks_url
        self._http = http_client
        self._clock = clock
        self._scope_claim = scope_claim
        self._recipient_claim = recipient_claim
        self._name_claims = tuple(name_claims)
        self._algorithms = list(algorithms)
        self._leeway = leeway_seconds
        self._cache_seconds = jwks_cache_seconds
        self._min_refresh_seconds = jwks_min_refresh_seconds
        self._timeout = timeout_seconds
        self._keys: tuple[jwt.PyJWK, ...] = ()
        self._fetched_at: datetime | None = None
        """Last successful fetch."""
        self._attempted_at: datetime | None = None
        """Last fetch started, successful or not: what the rate limit counts."""
        self._fetching = asyncio.Lock()

    async def principal(self, token: str) -> Principal | None:
        if not _COMPACT_JWS.fullmatch(token):
            return None
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return None
        algorithm, kid = header.get("alg"), header.get("kid")
        if algorithm not in self._algorithms:
            log.info("OIDC token refused: algorithm %r is not accepted", algorithm)
            return None
        key = await self._key(kid)
        if key is None:
            return None
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp", "iss", "aud"], "enforce_minimum_key_length": True},
            )
        except jwt.PyJWTError as error:
            log.info("OIDC token refused (kid %r): %s", kid, error)
            return None
        name = next(
            (value for c in self._name_claims if isinstance(value := claims.get(c), str) and value),
            None,
        )
        if name is None:
            log.info(
                "OIDC token refused: none of the claims %s names the caller", self._name_claims
            )
            return None
        scope, recipient_id = self._scope(claims)
        return Principal(name=NAME_PREFIX + name, scope=scope, recipient_id=recipient_id)

    def _scope(self, claims: Mapping[str, Any]) -> tuple[str, str | None]:
        """Ours, with the recipient for self-service; ("", None) when the token has none."""
        granted = {
            SCOPE_VALUES[value] for value in self._token_scopes(claims) if value in SCOPE_VALUES
        }
        recipient_id = claims.get(self._recipient_claim)
        if not (isinstance(recipient_id, str) and recipient_id):
            # Self-service is "act for this one recipient": without the recipient it is nothing.
            granted.discard(Scope.SELF_SERVICE)
            recipient_id = None
        scope = next((rank for rank in SCOPE_RANK if rank in granted), "")
        return scope, recipient_id if scope == Scope.SELF_SERVICE else None

    def _token_scopes(self, claims: Mapping[str, Any]) -> list[str]:
        value = claims.get(self._scope_claim)
        if value is None:
            value = claims.get(SCP_CLAIM)
        if isinstance(value, str):
            return value.split()
        if isinstance(value, list):
            return [item for item in value if isinstance(item, str)]
        return []

    async def _key(self, kid: object) -> jwt.PyJWK | None:
        """The key a token names, from the cache, refetched when the cache is old or (rate
        limited) when the key id is unknown. A token without a key id gets the JWKS's only
        key, if it has exactly one."""
        if self._due(self._fetched_at, self._cache_seconds) or self._find(kid) is None:
            async with self._fetching:
                # Another request may have refetched while this one waited for the lock.
                stale = self._due(self._fetched_at, self._cache_seconds)
                if (stale or self._find(kid) is None) and self._due(
                    self._attempted_at, self._min_refresh_seconds
                ):
                    await self._refresh()
        key = self._find(kid)
        if key is None:
            log.info("OIDC token refused: no key %r in the JWKS", kid)
        return key

    def _find(self, kid: object) -> jwt.PyJWK | None:
        if kid is None:
            return self._keys[0] if len(self._keys) == 1 else None
        return next((key for key in self._keys if key.key_id == kid), None)

    def _due(self, last: datetime | None, interval_seconds: float) -> bool:
        if last is None:
            return True
        elapsed = (self._clock.now() - last).total_seconds()
        # A clock set back must not hold off refreshing until it catches up.
        return not 0 <= elapsed < interval_seconds

    async def _refresh(self) -> None:
        self._attempted_at = self._clock.now()
        try:
            response = await self._http.get(
                self._jwks_url, headers={"Accept": "application/json"}, timeout=self._timeout
            )
            response.raise_for_status()
            document = orjson.loads(response.content)
        except (httpx.HTTPError, orjson.JSONDecodeError) as error:
            log.warning(
                "could not fetch the OIDC JWKS from %s (%s: %s); keeping %d cached keys",
                self._jwks_url,
                type(error).__name__,
                error,
                len(self._keys),
            )
            return
        if not (isinstance(document, dict) and isinstance(document.get("keys"), list)):
            log.warning(
                "%s is not a JWK Set; keeping %d cached keys", self._jwks_url, len(self._keys)
            )
            return
        self._keys = self._usable_keys(document["keys"])
        self._fetched_at = self._attempted_at
        if not self._keys:
            log.warning(
                "the OIDC JWKS at %s has no signing key for %s: every OIDC token is refused",
                self._jwks_url,
                ", ".join(self._algorithms),
            )

    def _usable_keys(self, entries: list[Any]) -> tuple[jwt.PyJWK, ...]:
        keys = []
        for entry in entries:
            if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
                continue
            try:
                key = jwt.PyJWK.from_dict(entry)
            except jwt.PyJWTError as error:
                log.info("skipping a JWK (kid %r) PyJWT can't use: %s", entry.get("kid"), error)
                continue
            # The key's algorithm is bound to it (its "alg", or the one its type implies);
            # PyJWT verifies with that one only.
            if key.algorithm_name in self._algorithms:
                keys.append(key)
        return tuple(keys)

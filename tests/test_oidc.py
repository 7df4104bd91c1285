"""OidcVerifier against a fake OpenID Connect provider serving its JWKS over real HTTP."""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from notifier.adapters.oidc import OidcVerifier
from notifier.ports import Principal
from tests.fakes.identity_provider import FakeIdentityProvider, SigningKey

ALICE = "alice@example.org"
CACHE_SECONDS = 300
MIN_REFRESH_SECONDS = 60


@dataclass
class ManualClock:
    current: datetime = field(default_factory=lambda: datetime(2026, 11, 28, 15, 0, tzinfo=UTC))

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


@pytest.fixture
def idp() -> Iterator[FakeIdentityProvider]:
    with FakeIdentityProvider() as fake:
        yield fake


@pytest.fixture
async def http_client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def verifier(
    idp: FakeIdentityProvider, http_client: httpx.AsyncClient, clock: ManualClock
) -> OidcVerifier:
    return verifier_for(idp, http_client, clock)


def verifier_for(
    idp: FakeIdentityProvider,
    http_client: httpx.AsyncClient,
    clock: ManualClock,
    *,
    jwks_url: str | None = None,
) -> OidcVerifier:
    return OidcVerifier(
        issuer=idp.issuer,
        audience=idp.audience,
        jwks_url=jwks_url or idp.jwks_url,
        http_client=http_client,
        clock=clock,
        jwks_cache_seconds=CACHE_SECONDS,
        jwks_min_refresh_seconds=MIN_REFRESH_SECONDS,
    )


def support_token(idp: FakeIdentityProvider, **overrides: Any) -> str:
    return idp.mint(idp.claims(email=ALICE, scope="openid email support", **overrides))


# Scopes and names


async def test_support_token_is_a_support_principal_named_by_email(
    verifier: OidcVerifier, idp: FakeIdentityProvider
) -> None:
    principal = await verifier.principal(support_token(idp))

    assert principal == Principal(name=f"oidc:{ALICE}", scope="support", recipient_id=None)


async def test_admin_wins_over_support_and_carries_no_recipient(
    verifier: OidcVerifier, idp: FakeIdentityProvider
) -> None:
    token = idp.mint(
        idp.claims(
            email=ALICE,
            scope="support notifier:admin self-service",
            notifier_recipient_id="r-17",
        )
    )

    assert await verifier.principal(token) == Principal(f"oidc:{ALICE}", "admin", None)


async def test_self_service_token_acts_for_the_recipient_it_names(
    verifier: OidcVerifier, idp: FakeIdentityProvider
) -> None:
    token = idp.mint(idp.claims(email=ALICE, scope="self-service", notifier_recipient_id="r-17"))

    assert await verifier.principal(token) == Principal(f"oidc:{ALICE}", "self-service", "r-17")


async def test_self_service_token_without_a_recipient_has_no_scope(
    verifier: OidcVerifier, idp: FakeIdentityProvider
) -> None:
    token = idp.mint(idp.claims(email=ALICE, scope="self-service"))

    assert await verifier.principal(token) == Principal(f"oidc:{ALICE}", "", None)


async def test_valid_token_without_our_scopes_is_a_principal_without_scope(
    verifier: OidcVerifier, idp: FakeIdentityProvider
) -> None:
    # The edge answers 403 for it (a known caller without the right), not 401.
    token = idp.mint(idp.claims(email=ALICE, scope="openid profile email supporter"))

    assert await verifier.principal(token) == Principal(f"oidc:{ALICE}", "", None)


async def test_prefixed_scopes_in_an_scp_list_are_read(
    verifier: OidcVerifier, idp: FakeIdentityProvider
) -> None:
    token = idp.mint(idp.claims(email=ALICE, scp=["openid", "notifier:support"]))

    principal = await verifier.principal(token)

    assert principal is not None
    assert principal.scope == "support"


@pytest.mark.parametrize(
    ("claims", "name"),
    [
        ({"preferred_username": "alice", "sub": "s-1"}, "oidc:alice"),
        ({"email": "", "preferred_username": "alice"}, "oidc:alice"),
        ({"sub": "s-1"}, "oidc:s-1"),
    ],
    ids=["preferred_username before sub", "empty email skipped", "sub last"],
)
async def test_name_is_the_first_claim_present_of_email_username_subject(
    verifier: OidcVerifier, idp: FakeIdentityProvider, claims: dict[str, str], name: str
) -> None:
    token = idp.mint(idp.claims(scope="support", **{"sub": None, **claims}))

    principal = await verifier.principal(token)

    assert principal is not None
    assert principal.name == name


async def test_token_naming_nobody_is_refused(
    verifier: OidcVerifier, idp: FakeIdentityProvider
) -> None:
    token = idp.mint(idp.claims(sub=None, scope="support"))

    assert await verifier.principal(token) is None


async def test_es256_token_is_verified_with_an_ec_key(
    http_client: httpx.AsyncClient, clock: ManualClock
) -> None:
    with FakeIdentityProvider(algorithm="ES256") as idp:
        verifier = verifier_for(idp, http_client, clock)

        principal = await verifier.principal(support_token(idp))

    assert principal is not None
    assert principal.scope == "support"


async def test_token_without_a_kid_is_verified_with_the_only_published_key(
    verifier: OidcVerifier, idp: FakeIdentityProvider
) -> None:
    token = idp.mint(idp.claims(email=ALICE, scope="support"), kid="")

    assert await verifier.principal(token) == Principal(f"oidc:{ALICE}", "support")


async def test_expiry_within_the_leeway_is_accepted(
    verifier: OidcVerifier, idp: FakeIdentityProvider
) -> None:
    now = int(time.time())

    token = support_token(idp, iat=now - 3600, exp=now - 10)

    assert await verifier.principal(token) is not None


# Tokens that prove nothing


def _tampered(idp: FakeIdentityProvider) -> str:
    header, _, signature = support_token(idp).split(".")
    forged = idp.mint(idp.claims(email=ALICE, scope="admin")).split(".")[1]
    return f"{header}.{forged}.{signature}"


def _other_key_same_kid(idp: FakeIdentityProvider) -> str:
    impostor = SigningKey.generate(kid=idp.signing_key.kid)
    return idp.mint(idp.claims(email=ALICE, scope="admin"), key=impostor)


def _claims_from_now(**offsets: int) -> Callable[[FakeIdentityProvider], str]:
    def mint(idp: FakeIdentityProvider) -> str:
        now = int(time.time())
        return support_token(idp, **{claim: now + offset for claim, offset in offsets.items()})

    return mint


UNPROVEN: dict[str, Callable[[FakeIdentityProvider], str]] = {
    "expired beyond the leeway": _claims_from_now(iat=-7200, exp=-3600),
    "not yet valid": _claims_from_now(nbf=3600),
    "issued in the future": _claims_from_now(iat=3600, exp=7200),
    "without exp": lambda idp: support_token(idp, exp=None),
    "wrong issuer": lambda idp: support_token(idp, iss="https://login.example.net/"),
    "without issuer": lambda idp: support_token(idp, iss=None),
    "wrong audience": lambda idp: support_token(idp, aud="another-service"),
    "audience list without ours": lambda idp: support_token(idp, aud=["a", "b"]),
    "tampered payload": _tampered,
    "signed by another key with the same kid": _other_key_same_kid,
    "alg none": lambda idp: idp.forge_unsigned(idp.claims(email=ALICE, scope="admin")),
    "HS256 with the public key as secret": lambda idp: idp.forge_hs256_with_public_key(
        idp.claims(email=ALICE, scope="admin")
    ),
}


@pytest.mark.parametrize("forge", UNPROVEN.values(), ids=UNPROVEN.keys())
async def test_token_that_proves_nothing_is_refused(
    verifier: OidcVerifier, idp: FakeIdentityProvider, forge: Callable[[FakeIdentityProvider], str]
) -> None:
    assert await verifier.principal(forge(idp)) is None


async def test_audience_list_with_ours_is_accepted(
    verifier: OidcVerifier, idp: FakeIdentityProvider
) -> None:
    token = support_token(idp, aud=["account", idp.audience])

    assert await verifier.principal(token) is not None


@pytest.mark.parametrize(
    "token",
    [
        "nt_" + secrets.token_urlsafe(32),
        "",
        "a.b",
        "not a jwt.at all.really",
        "e30.e30.c2ln",  # a JWS with an empty header: no algorithm
        "eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d",  # a JWE (five parts)
    ],
    ids=["static token", "empty", "two parts", "spaces", "no alg", "JWE"],
)
async def test_non_jwt_is_refused_without_fetching_keys(
    verifier: OidcVerifier, idp: FakeIdentityProvider, token: str
) -> None:
    assert await verifier.principal(token) is None
    assert idp.jwks_fetches == 0


async def test_refusal_is_logged_with_its_reason_and_without_the_token(
    verifier: OidcVerifier, idp: FakeIdentityProvider, caplog: pytest.LogCaptureFixture
) -> None:
    token = _claims_from_now(iat=-7200, exp=-3600)(idp)

    with caplog.at_level(logging.INFO, logger="notifier.adapters.oidc"):
        assert await verifier.principal(token) is None

    assert "expired" in caplog.text
    assert token.split(".")[2] not in caplog.text


@pytest.mark.parametrize("algorithm", ["HS256", "none"])
def test_symmetric_or_no_algorithm_cannot_be_configured(
    http_client: httpx.AsyncClient, algorithm: str
) -> None:
    with pytest.raises(ValueError, match="asymmetric"):
        OidcVerifier(
            issuer="https://idp.example",
            audience="notifier",
            jwks_url="https://idp.example/jwks",
            http_client=http_client,
            clock=ManualClock(),
            algorithms=("RS256", algorithm),
        )


# The key cache


async def test_new_kid_after_the_provider_rotates_keys_is_accepted(
    verifier: OidcVerifier, idp: FakeIdentityProvider, clock: ManualClock
) -> None:
    old_token = support_token(idp)
    assert await verifier.principal(old_token) is not None
    idp.rotate()
    clock.advance(MIN_REFRESH_SECONDS)

    new_token = support_token(idp)

    assert await verifier.principal(new_token) is not None
    assert await verifier.principal(old_token) is not None
    assert idp.jwks_fetches == 2


async def test_unknown_kids_fetch_the_jwks_at_most_once_per_refresh_interval(
    verifier: OidcVerifier, idp: FakeIdentityProvider, clock: ManualClock
) -> None:
    def made_up_kid(n: int) -> str:
        return idp.mint(idp.claims(email=ALICE, scope="admin"), kid=f"made-up-{n}")

    assert await verifier.principal(support_token(idp)) is not None
    assert idp.jwks_fetches == 1

    clock.advance(MIN_REFRESH_SECONDS)
    refused = [await verifier.principal(made_up_kid(n)) for n in range(20)]
    assert refused == [None] * 20
    assert idp.jwks_fetches == 2

    clock.advance(MIN_REFRESH_SECONDS - 1)
    assert await verifier.principal(made_up_kid(20)) is None
    assert idp.jwks_fetches == 2

    clock.advance(1)
    assert await verifier.principal(made_up_kid(21)) is None
    assert idp.jwks_fetches == 3


async def test_withdrawn_key_is_refused_once_the_cache_expires(
    verifier: OidcVerifier, idp: FakeIdentityProvider, clock: ManualClock
) -> None:
    token = support_token(idp)
    assert await verifier.principal(token) is not None
    idp.rotate(keep_old=False)

    clock.advance(CACHE_SECONDS - 1)
    assert await verifier.principal(token) is not None
    assert idp.jwks_fetches == 1

    clock.advance(1)
    assert await verifier.principal(token) is None
    assert idp.jwks_fetches == 2


async def test_concurrent_first_requests_fetch_the_jwks_once(
    verifier: OidcVerifier, idp: FakeIdentityProvider
) -> None:
    token = support_token(idp)

    principals = await asyncio.gather(*(verifier.principal(token) for _ in range(10)))

    assert all(principal is not None for principal in principals)
    assert idp.jwks_fetches == 1


async def test_jwks_endpoint_failing_refuses_tokens_with_a_warning_until_it_recovers(
    verifier: OidcVerifier,
    idp: FakeIdentityProvider,
    clock: ManualClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    token = support_token(idp)
    idp.fail_next(status=503)

    with caplog.at_level(logging.WARNING, logger="notifier.adapters.oidc"):
        assert await verifier.principal(token) is None
        assert await verifier.principal(token) is None

    assert "could not fetch the OIDC JWKS" in caplog.text
    assert idp.jwks_fetches == 1
    clock.advance(MIN_REFRESH_SECONDS)
    assert await verifier.principal(token) is not None


async def test_unreachable_jwks_endpoint_refuses_tokens(
    idp: FakeIdentityProvider, http_client: httpx.AsyncClient, clock: ManualClock
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    verifier = verifier_for(
        idp, http_client, clock, jwks_url=f"http://127.0.0.1:{closed_port}/jwks.json"
    )

    assert await verifier.principal(support_token(idp)) is None


async def test_cached_keys_stay_in_use_when_a_refresh_fails(
    verifier: OidcVerifier, idp: FakeIdentityProvider, clock: ManualClock
) -> None:
    token = support_token(idp)
    assert await verifier.principal(token) is not None
    clock.advance(CACHE_SECONDS)
    idp.fail_next(status=500)

    assert await verifier.principal(token) is not None
    assert idp.jwks_fetches == 2

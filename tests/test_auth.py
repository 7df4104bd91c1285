"""The checks every edge that takes bearer tokens makes, in order (entrypoints/auth.py), and
the API's one map from refusals to HTTP answers (entrypoints/http.py)."""

from __future__ import annotations

import pytest

from notifier.domain.model import Scope
from notifier.entrypoints.auth import (
    ADMIN,
    SUPPORT,
    NoToken,
    ScopeRefused,
    UnknownToken,
    admit,
)
from notifier.entrypoints.http import REFUSALS, refusal_answer
from notifier.handlers.contact_points import ResetRefused
from notifier.ports import Principal
from notifier.rate_limit import RateLimited, RateLimiter

ALICE = Principal("alice", Scope.SUPPORT)
UNSCOPED = Principal("oidc:bob", "")


class KnownTokens:
    def __init__(self, principals: dict[str, Principal]) -> None:
        self._principals = principals

    async def principal(self, token: str) -> Principal | None:
        return self._principals.get(token)


VERIFIERS = [KnownTokens({"alice-token": ALICE, "bob-token": UNSCOPED})]


async def test_a_known_token_with_an_allowed_scope_is_admitted() -> None:
    limiter = RateLimiter(per_minute=60, burst=1)

    assert await admit("alice-token", VERIFIERS, limiter, SUPPORT) == ALICE


@pytest.mark.parametrize(
    ("token", "refusal"),
    [(None, NoToken), ("forged", UnknownToken)],
    ids=["no-token", "unknown-token"],
)
async def test_a_caller_without_a_known_token_is_refused(
    token: str | None, refusal: type[Exception]
) -> None:
    with pytest.raises(refusal):
        await admit(token, VERIFIERS, RateLimiter(per_minute=60, burst=1), SUPPORT)


async def test_a_caller_refused_for_its_scope_uses_none_of_its_rate() -> None:
    limiter = RateLimiter(per_minute=1, burst=1)

    with pytest.raises(ScopeRefused):
        await admit("alice-token", VERIFIERS, limiter, ADMIN)

    assert await admit("alice-token", VERIFIERS, limiter, SUPPORT) == ALICE


async def test_a_caller_over_its_rate_is_refused_after_its_burst() -> None:
    limiter = RateLimiter(per_minute=1, burst=1)
    await admit("alice-token", VERIFIERS, limiter, SUPPORT)

    with pytest.raises(RateLimited):
        await admit("alice-token", VERIFIERS, limiter, SUPPORT)


@pytest.mark.parametrize(
    ("error", "status", "header"),
    [
        pytest.param(NoToken(), 401, ("WWW-Authenticate", "Bearer"), id="no-token"),
        pytest.param(
            UnknownToken(),
            401,
            ("WWW-Authenticate", 'Bearer error="invalid_token"'),
            id="unknown-token",
        ),
        pytest.param(ScopeRefused(ALICE, ADMIN), 403, None, id="scope"),
        pytest.param(RateLimited(7), 429, ("Retry-After", "7"), id="rate"),
        pytest.param(ResetRefused("only its owner can"), 409, None, id="reset-refused"),
    ],
)
def test_each_refusal_has_one_http_answer(
    error: Exception, status: int, header: tuple[str, str] | None
) -> None:
    answer = refusal_answer(error)

    assert answer.status_code == status
    if header is not None:
        assert answer.headers is not None
        assert answer.headers[header[0]] == header[1]


def test_a_scope_refusal_says_what_is_needed_and_what_the_token_has() -> None:
    assert refusal_answer(ScopeRefused(ALICE, ADMIN)).detail == (
        "this needs a scope of admin; the token's is support"
    )
    assert refusal_answer(ScopeRefused(UNSCOPED, SUPPORT)).detail == (
        "this needs a scope of support, admin; the token grants none of notifier's scopes"
    )


def test_every_refusal_the_api_lets_through_has_an_answer() -> None:
    examples = [
        NoToken(),
        UnknownToken(),
        ScopeRefused(ALICE, ADMIN),
        RateLimited(1),
        ResetRefused("no"),
    ]

    assert {type(example) for example in examples} == set(REFUSALS)
    for example in examples:
        refusal_answer(example)

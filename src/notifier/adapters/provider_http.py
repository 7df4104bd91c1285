"""What a provider's HTTP exchange says about retrying, the same for every provider adapter:
which httpx transport failures are safe to retry, and how long a Retry-After asks to wait.

What a provider's own status codes and error bodies mean stays in its module.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import MappingProxyType

import httpx

from notifier.ports import ProviderError, TransientProviderError, UnknownOutcomeError

TRANSPORT_OUTCOMES: Mapping[type[httpx.TransportError], type[ProviderError]] = MappingProxyType(
    {
        # The request never left: safe to retry.
        httpx.ConnectError: TransientProviderError,
        httpx.ConnectTimeout: TransientProviderError,
        httpx.PoolTimeout: TransientProviderError,
        # The request may have reached the provider: a retry could send the message twice.
        httpx.WriteTimeout: UnknownOutcomeError,
        httpx.WriteError: UnknownOutcomeError,
        httpx.ReadTimeout: UnknownOutcomeError,
        httpx.ReadError: UnknownOutcomeError,
        httpx.RemoteProtocolError: UnknownOutcomeError,
    }
)
"""Looked up along the exception's MRO; a transport error not listed here is treated as an
unknown outcome, because nothing proves the request was not sent."""


def transport_error(provider: str, error: httpx.TransportError) -> ProviderError:
    """The typed error for a request to ``provider`` that failed below HTTP."""
    outcome = next(
        (TRANSPORT_OUTCOMES[kind] for kind in type(error).__mro__ if kind in TRANSPORT_OUTCOMES),
        UnknownOutcomeError,
    )
    return outcome(provider, f"{type(error).__name__}: {error}")


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds from a Retry-After value (delta-seconds or HTTP-date); None when it is absent
    or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())

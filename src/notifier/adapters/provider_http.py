"""How every provider adapter talks HTTP: one pooled keep-alive aiohttp session, our own
timeout, exactly one attempt (whether to retry is the delivery's decision: it holds the
ledger), and what a failure below HTTP says about retrying — the same for every provider.

Why aiohttp and not httpx: at the dozens of sends in flight a busy service has, httpx (with
httpcore and anyio beneath) spent 1-2.6 ms of CPU per request on this machine and aiohttp
0.2-0.3 ms (measured against bench/fakes.py's fake Twilio); a provider call per text or
email made httpx the largest single cost of a delivery. aiohttp is already installed for
the twilio package.

What a provider's own status codes and error bodies mean stays in its module.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import MappingProxyType
from typing import Any

import aiohttp
import orjson
from yarl import URL

from notifier.ports import ProviderError, TransientProviderError, UnknownOutcomeError

TRANSPORT_OUTCOMES: Mapping[type[BaseException], type[ProviderError]] = MappingProxyType(
    {
        # The request never left (refused, no such host, TLS refused, no connection in
        # time): safe to retry.
        aiohttp.ClientConnectorError: TransientProviderError,
        aiohttp.ConnectionTimeoutError: TransientProviderError,
        # The request may have reached the provider (the connection dropped or went silent
        # after sending began): a retry could send the message twice.
        aiohttp.ServerDisconnectedError: UnknownOutcomeError,
        aiohttp.SocketTimeoutError: UnknownOutcomeError,
        aiohttp.ClientPayloadError: UnknownOutcomeError,
    }
)
"""Looked up along the exception's MRO; a failure not listed here (the whole exchange
taking longer than the timeout, say) is treated as an unknown outcome, because nothing
proves the request was not sent."""


def transport_error(provider: str, error: BaseException) -> ProviderError:
    """The typed error for a request to ``provider`` that failed below HTTP."""
    outcome = next(
        (TRANSPORT_OUTCOMES[kind] for kind in type(error).__mro__ if kind in TRANSPORT_OUTCOMES),
        UnknownOutcomeError,
    )
    return outcome(provider, f"{type(error).__name__}: {error}")


def create_session(max_connections: int) -> aiohttp.ClientSession:
    """The process's one session for provider calls: keep-alive connections, at most as many
    as sends may be in flight, and no cookies (nothing a provider sets is for later)."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=max_connections, ttl_dns_cache=300),
        cookie_jar=aiohttp.DummyCookieJar(),
    )


@dataclass(frozen=True, slots=True)
class ProviderResponse:
    status: int
    reason: str
    headers: Mapping[str, str]
    """Case-insensitive, as HTTP header names are."""
    text: str

    @property
    def is_success(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        """The body as JSON; raises ``ValueError`` when it isn't."""
        return orjson.loads(self.text)


class ProviderHttp:
    """Requests to one provider over the shared session, bounded by ``timeout_seconds`` as a
    whole (connecting gets half of it, so a provider that can't be reached is told apart
    from one that took the request and went silent)."""

    def __init__(self, session: aiohttp.ClientSession, provider: str, timeout_seconds: float):
        if timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds must be positive, got {timeout_seconds}")
        self._session = session
        self._provider = provider
        self._timeout = aiohttp.ClientTimeout(
            total=timeout_seconds, sock_connect=timeout_seconds / 2
        )

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> ProviderResponse:
        try:
            async with self._session.request(
                method,
                # As built by the adapter, already escaped: not re-normalised on the way.
                URL(url, encoded=True),
                headers=headers,
                params=params,
                data=body,
                timeout=self._timeout,
                allow_redirects=False,
            ) as response:
                content = await response.read()
        except (aiohttp.ClientError, TimeoutError) as error:
            raise transport_error(self._provider, error) from error
        return ProviderResponse(
            status=response.status,
            reason=response.reason or "",
            headers=response.headers,
            text=content.decode("utf-8", errors="replace"),
        )


def basic_auth(user: str, password: str) -> str:
    """An ``Authorization`` header value for HTTP Basic."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


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

"""What both translator adapters share: the refusal of a language a vendor lacks, and a
synchronous SDK call run in a thread under our own timeout."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from notifier.domain.model import Reason
from notifier.ports import PermanentProviderError, TransientProviderError


def unsupported_language(provider: str, vendor: str, target: str) -> PermanentProviderError:
    return PermanentProviderError(
        provider,
        f"{vendor} does not translate into {target}",
        reason=Reason.PROVIDER_ERROR,
        code="unsupported_language",
    )


async def in_thread_with_timeout(
    provider: str, timeout_seconds: float, call: Callable[[], str]
) -> str:
    """The SDKs block; the thread of a call that times out ends with its socket timeout,
    which the adapters set to the same value."""
    try:
        async with asyncio.timeout(timeout_seconds):
            return await asyncio.to_thread(call)
    except TimeoutError as error:
        raise TransientProviderError(
            provider, f"no answer within {timeout_seconds:g} s", code="timeout"
        ) from error

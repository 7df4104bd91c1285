"""Every call to a provider goes through one guarded sender: its circuit, its rate (pacing),
an in-flight slot, retries of what provably did not take effect, and metrics — for a
delivery, its failover, and the notices replies send alike."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from datetime import datetime

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential_jitter,
)

from notifier.domain.circuit import CircuitBreaker
from notifier.domain.model import Channel, OutboundMessage, Reason
from notifier.domain.values import value_type
from notifier.ports import (
    ChannelSender,
    Clock,
    Metrics,
    PermanentProviderError,
    ProviderError,
    ProviderReceipt,
    ProviderUnavailableError,
    SendPacer,
    SentMessageLookup,
    TransientProviderError,
    UnknownOutcomeError,
)

log = logging.getLogger(__name__)


@value_type
class RetryPolicy:
    attempts: int
    max_seconds: float
    first_wait_seconds: float = 0.2
    longest_wait_seconds: float = 5.0


@value_type
class SendGuards:
    """What a provider call waits for and is counted by, shared by every channel."""

    clock: Clock
    metrics: Metrics
    retry: RetryPolicy
    in_flight: asyncio.Semaphore
    """Bounds provider calls in progress across the process."""
    circuits: Mapping[str, CircuitBreaker]
    """Per provider name; a provider without one is always called."""
    pacers: Mapping[Channel, SendPacer]
    """Per channel: the provider's rate limit, waited for before each call."""


@value_type
class GuardedSender:
    """A ChannelSender behind the guards. Raises the provider's typed errors after the
    retries (``ProviderUnavailableError`` while its circuit is open)."""

    sender: ChannelSender
    guards: SendGuards

    @property
    def provider(self) -> str:
        return self.sender.provider

    async def send(self, message: OutboundMessage) -> ProviderReceipt:
        try:
            # Nearly every send is answered at the first attempt: the retry machinery is
            # built only for one that wasn't.
            return await self._attempt(message)
        except TransientProviderError as error:
            first_failure: TransientProviderError | None = error
        async for attempt in _retrying(self.guards, self.provider, TransientProviderError):
            with attempt:
                if first_failure is not None:
                    # The first attempt, already made: tenacity goes on from its failure.
                    failure, first_failure = first_failure, None
                    raise failure
                receipt = await self._attempt(message)
        return receipt

    async def _attempt(self, message: OutboundMessage) -> ProviderReceipt:
        guards, provider = self.guards, self.provider
        circuit = guards.circuits.get(provider)
        if circuit is not None and not circuit.allows(guards.clock.now()):
            raise ProviderUnavailableError(provider, "circuit open", code="circuit")
        pacer = guards.pacers.get(message.channel)
        if pacer is not None:
            # Waited before taking a slot: a queue for one provider's rate must not hold the
            # slots other channels' messages need.
            await pacer.wait_turn(message)
        # The slot is held only while calling, never while waiting to retry.
        async with guards.in_flight:
            started = time.perf_counter()
            try:
                receipt = await self.sender.send(message)
            except ProviderError as error:
                guards.metrics.provider_request(
                    provider, type(error).__name__, time.perf_counter() - started
                )
                self._record_health(circuit, error)
                raise
            guards.metrics.provider_request(provider, "accepted", time.perf_counter() - started)
            self._record_health(circuit, None)
        return receipt

    def _record_health(self, circuit: CircuitBreaker | None, error: ProviderError | None) -> None:
        """A provider that answered — even to refuse one address — is up; one that failed,
        timed out or refused us as a whole (bad key, no permission) counts towards opening."""
        if circuit is None:
            return
        provider_failed = isinstance(error, TransientProviderError | UnknownOutcomeError) or (
            isinstance(error, PermanentProviderError) and error.reason is Reason.PROVIDER_ERROR
        )
        now, metrics = self.guards.clock.now(), self.guards.metrics
        if provider_failed:
            if circuit.failed(now):
                log.warning("%s keeps failing: circuit open, failing over", self.provider)
                metrics.circuit_changed(self.provider, is_open=True)
        elif circuit.succeeded(now):
            log.info("%s answers again: circuit closed", self.provider)
            metrics.circuit_changed(self.provider, is_open=False)


@value_type
class GuardedLookup:
    """A provider's list of what it took, asked in an in-flight slot and asked again when it
    could not answer. Unlike a send, any failure may be retried (a read takes no effect):
    after a crash every text of the uncommitted batches is looked up at once, and a lookup
    given up at its first timeout or 429 sends a text the family already has."""

    lookup: SentMessageLookup
    guards: SendGuards

    async def find_sent(self, message: OutboundMessage, since: datetime) -> ProviderReceipt | None:
        provider = self.lookup.provider
        async for attempt in _retrying(
            self.guards, provider, (TransientProviderError, UnknownOutcomeError)
        ):
            with attempt:
                async with self.guards.in_flight:
                    found = await self.lookup.find_sent(message, since)
        return found


def _retrying(
    guards: SendGuards,
    provider: str,
    worth_retrying: type[ProviderError] | tuple[type[ProviderError], ...],
) -> AsyncRetrying:
    """The policy's attempts and budget with jittered exponential backoff, each retry
    counted. A wait (a long Retry-After, say) that would end past the budget is not waited
    out (stop_before_delay): a delivery fails over now instead of an hour later."""
    policy = guards.retry
    backoff = wait_exponential_jitter(
        multiplier=policy.first_wait_seconds,
        max=policy.longest_wait_seconds,
        jitter=policy.first_wait_seconds,
    )

    def wait(state: RetryCallState) -> float:
        # Honour a provider's Retry-After when it asks for longer than our backoff.
        error = state.outcome.exception() if state.outcome else None
        asked = error.retry_after if isinstance(error, TransientProviderError) else None
        return max(backoff(state), asked or 0.0)

    def count_retry(state: RetryCallState) -> None:
        guards.metrics.retry(provider)

    return AsyncRetrying(
        stop=stop_after_attempt(policy.attempts) | stop_before_delay(policy.max_seconds),
        wait=wait,
        retry=retry_if_exception_type(worth_retrying),
        before_sleep=count_retry,
        reraise=True,
    )

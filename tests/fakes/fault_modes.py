"""Random provider trouble for the fake Twilio and SendGrid servers: HTTP 500s, 429s that ask
to retry after a while, and hanging connections, each at a rate, drawn from a seeded random
generator so that a run can be repeated.

    twilio.faults = FaultPlan(FaultRates(error=0.1, throttle=0.05, hang=0.02, seed=7))

What each fault does to a request:

- ``error``: answered at once with HTTP 500 in the provider's error format; not handled, so
  nothing is accepted (the provider did not take the message).
- ``throttle``: answered at once with HTTP 429 asking to wait ``retry_after_seconds`` (as
  Retry-After for Twilio, X-RateLimit-Reset for SendGrid); nothing is accepted.
- ``hang``: held for ``hang_seconds`` (set it past the client's timeout), then handled as
  usual. It is recorded as accepted only if that late answer is a 2xx — as a real provider
  that queued the message but answered too late: the client has given up by then, so the
  outcome is unknown to it, while the message did go out. A fake stopped during the hang
  answers 503 instead and accepts nothing.

Errors and throttles are recorded in ``received`` like scripted failures (``fail_next``); a
hung request is recorded when it is handled, after the hang. The sequence of draws repeats
with the seed; which request meets which draw depends on the order requests arrive in.

The fakes take a plan as ``faults`` (a constructor argument or an attribute to set while they
run) and their command lines take ``--error-rate``, ``--throttle-rate``, ``--hang-rate``,
``--retry-after``, ``--hang-seconds`` and ``--fault-seed``, to run them in a process of
their own: ``python -m tests.fakes.twilio_server --port 8701 --error-rate 0.1``.
"""

from __future__ import annotations

import argparse
import random
import threading
from abc import abstractmethod
from collections import Counter
from dataclasses import dataclass
from enum import StrEnum

from tests.fakes.http_server import FailureT, FakeJsonApi, ReceivedRequest, Reply


class Fault(StrEnum):
    ERROR = "error"
    THROTTLE = "throttle"
    HANG = "hang"


@dataclass(frozen=True, slots=True)
class FaultRates:
    """The share of requests that meet each fault (the rest are handled normally)."""

    error: float = 0.0
    throttle: float = 0.0
    hang: float = 0.0
    retry_after_seconds: float = 1.0
    hang_seconds: float = 3.0
    seed: int = 0

    def __post_init__(self) -> None:
        rates = (self.error, self.throttle, self.hang)
        if any(rate < 0 for rate in rates) or sum(rates) > 1:
            raise ValueError(f"fault rates must be >= 0 and add up to at most 1, got {rates}")


class FaultPlan:
    """Draws the fault (or none) of each request; thread-safe, and counts what it drew."""

    def __init__(self, rates: FaultRates) -> None:
        self.rates = rates
        self._random = random.Random(rates.seed)
        self._lock = threading.Lock()
        self._drawn: Counter[Fault] = Counter()

    @property
    def drawn(self) -> dict[Fault, int]:
        """How many requests met each fault so far."""
        with self._lock:
            return dict(self._drawn)

    def draw(self) -> Fault | None:
        with self._lock:
            roll = self._random.random()
            for fault, rate in (
                (Fault.ERROR, self.rates.error),
                (Fault.THROTTLE, self.rates.throttle),
                (Fault.HANG, self.rates.hang),
            ):
                if roll < rate:
                    self._drawn[fault] += 1
                    return fault
                roll -= rate
            return None


class FaultInjectingApi(FakeJsonApi[FailureT]):
    """A fake provider that meets the faults of its ``faults`` plan (None: no faults, the
    default). Subclasses say how the provider words a 500 or a 429."""

    faults: FaultPlan | None = None

    @abstractmethod
    def _failure_for(self, status: int, retry_after: float | None) -> FailureT:
        """The provider's failure answered with HTTP ``status``."""

    # Called from handler threads.

    def _answer(self, request: ReceivedRequest) -> Reply:
        plan = self.faults
        fault = plan.draw() if plan is not None else None
        if plan is None or fault is None:
            return super()._answer(request)
        if fault is Fault.HANG:
            if self._stopping.wait(plan.rates.hang_seconds):
                return self._failure_reply(self._unavailable)
            return super()._answer(request)
        with self._lock:
            self._received.append(request)
        if fault is Fault.THROTTLE:
            return self._failure_reply(
                self._failure_for(429, retry_after=plan.rates.retry_after_seconds)
            )
        return self._failure_reply(self._failure_for(500, retry_after=None))


def add_fault_arguments(parser: argparse.ArgumentParser) -> None:
    """The fault options of a fake provider's command line."""
    faults = parser.add_argument_group("faults (see tests/fakes/fault_modes.py)")
    faults.add_argument("--error-rate", type=float, default=0.0, help="share answered 500")
    faults.add_argument("--throttle-rate", type=float, default=0.0, help="share answered 429")
    faults.add_argument("--hang-rate", type=float, default=0.0, help="share held, then answered")
    faults.add_argument("--retry-after", type=float, default=1.0, help="seconds a 429 asks for")
    faults.add_argument("--hang-seconds", type=float, default=3.0, help="how long a hang lasts")
    faults.add_argument("--fault-seed", type=int, default=0, help="seed of the fault draws")


def faults_from_arguments(args: argparse.Namespace) -> FaultPlan | None:
    """The plan the fault options ask for; None when every rate is 0."""
    rates = FaultRates(
        error=args.error_rate,
        throttle=args.throttle_rate,
        hang=args.hang_rate,
        retry_after_seconds=args.retry_after,
        hang_seconds=args.hang_seconds,
        seed=args.fault_seed,
    )
    if not (rates.error or rates.throttle or rates.hang):
        return None
    return FaultPlan(rates)

"""Both fake providers answer a share of requests with 500s, 429s that ask to wait a
second, and connections that hang past the service's timeout: everything is still sent,
retried, or failed over, and nothing is lost or sent twice (tests/faults/harness.py)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from tests.fakes.fault_modes import Fault, FaultPlan, FaultRates
from tests.faults.harness import PROVIDER_TIMEOUT_SECONDS, FaultSummary, Load, fault_run

pytestmark = pytest.mark.kafka

LOAD = Load(requests=50, per_request=20, seed=21)
RATES = FaultRates(
    error=0.10,
    throttle=0.05,
    hang=0.03,
    retry_after_seconds=1.0,
    hang_seconds=PROVIDER_TIMEOUT_SECONDS + 1.0,
)


async def test_provider_errors_throttling_and_hangs_lose_nothing(
    tmp_path: Path, fault_summary: FaultSummary
) -> None:
    async with fault_run(tmp_path, load=LOAD) as run:
        await run.start_with_directory()
        plans = {
            "twilio": FaultPlan(replace(RATES, seed=1)),
            "sendgrid": FaultPlan(replace(RATES, seed=2)),
        }
        run.twilio.faults, run.sendgrid.faults = plans["twilio"], plans["sendgrid"]
        await run.publish_requests(LOAD.send_requests())

        verdict = await run.settle()
        drawn = {name: plan.drawn for name, plan in plans.items()}
        note = "; ".join(
            f"{name} " + ", ".join(f"{fault}={count}" for fault, count in faults.items())
            for name, faults in drawn.items()
        )
        fault_summary.record("provider faults (500, 429, hangs)", run, verdict, note)
        assert not verdict.failures(), "\n".join([*verdict.failures(), run.logs()])
        for name, faults in drawn.items():
            assert set(faults) == set(Fault), (
                f"{name} met only {faults}: the test proves little\n{run.logs()}"
            )

"""The fake providers' fault modes themselves (tests/fakes/fault_modes.py), over HTTP."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.fakes.fault_modes import Fault, FaultPlan, FaultRates
from tests.fakes.sendgrid_server import DEFAULT_API_KEY, FakeSendGrid
from tests.fakes.twilio_server import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, FakeTwilio

TEXT = {"To": "+15555550123", "MessagingServiceSid": "MG" + "0" * 32, "Body": "notice 1."}
MAIL = {
    "personalizations": [{"to": [{"email": "wei@springfield.example"}]}],
    "from": {"email": "no-reply@springfield.example"},
    "subject": "notice",
    "content": [{"type": "text/plain", "value": "notice 1."}],
}


def _text(twilio: FakeTwilio, timeout: float = 5.0) -> httpx.Response:
    return httpx.post(
        f"{twilio.base_url}/2010-04-01/Accounts/{DEFAULT_ACCOUNT_SID}/Messages.json",
        data=TEXT,
        auth=(DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN),
        timeout=timeout,
    )


def _mail(sendgrid: FakeSendGrid) -> httpx.Response:
    return httpx.post(
        f"{sendgrid.base_url}/v3/mail/send",
        json=MAIL,
        headers={"Authorization": f"Bearer {DEFAULT_API_KEY}"},
    )


def test_errors_and_throttles_are_answered_in_the_providers_formats_and_accept_nothing() -> None:
    with (
        FakeTwilio(faults=FaultPlan(FaultRates(error=1.0))) as failing,
        FakeTwilio(faults=FaultPlan(FaultRates(throttle=1.0, retry_after_seconds=1))) as busy,
        FakeSendGrid(faults=FaultPlan(FaultRates(throttle=1.0, retry_after_seconds=1))) as full,
    ):
        error = _text(failing)
        throttled = _text(busy)
        mail = _mail(full)

        assert (error.status_code, error.json()["code"]) == (500, 20500)
        assert (throttled.status_code, throttled.headers["Retry-After"]) == (429, "1")
        assert mail.status_code == 429
        assert int(mail.headers["X-RateLimit-Reset"]) >= int(time.time())
        assert failing.messages == busy.messages == []
        assert full.accepted == []
        assert len(failing.received) == len(busy.received) == len(full.received) == 1


def test_a_hang_outlasts_the_client_and_is_accepted_only_when_it_answers() -> None:
    rates = FaultRates(hang=1.0, hang_seconds=0.5)
    with FakeTwilio(faults=FaultPlan(rates)) as twilio:
        with pytest.raises(httpx.ReadTimeout):
            _text(twilio, timeout=0.1)
        assert twilio.messages == [], "accepted before it answered"
        deadline = time.monotonic() + 5.0
        while not twilio.messages and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [m["body"] for m in twilio.messages] == ["notice 1."]


def test_a_fake_stopped_during_a_hang_accepts_nothing() -> None:
    twilio = FakeTwilio(faults=FaultPlan(FaultRates(hang=1.0, hang_seconds=30))).start()
    try:
        with pytest.raises(httpx.ReadTimeout):
            _text(twilio, timeout=0.2)
    finally:
        twilio.stop()
    assert twilio.messages == []


def test_the_draws_follow_the_rates_and_repeat_with_the_seed() -> None:
    rates = FaultRates(error=0.2, throttle=0.1, hang=0.05, seed=7)
    first, second = FaultPlan(rates), FaultPlan(rates)
    draws = [first.draw() for _ in range(2000)]

    assert draws == [second.draw() for _ in range(2000)]
    shares = {fault: draws.count(fault) / len(draws) for fault in Fault}
    assert shares == pytest.approx(
        {Fault.ERROR: 0.2, Fault.THROTTLE: 0.1, Fault.HANG: 0.05}, abs=0.03
    )
    assert first.drawn == {fault: draws.count(fault) for fault in Fault}

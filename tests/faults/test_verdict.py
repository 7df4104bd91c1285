"""The verdict of a fault run (tests/faults/harness.py) on made-up ledgers: it must catch
what the scenarios are there to catch, or their green means nothing."""

from __future__ import annotations

from typing import Any

from tests.fakes.sendgrid_server import AcceptedMail
from tests.faults.harness import DeliveryRow, judge
from tests.test_pipeline_kafka import send_request

PHONE = "+15550100001"
REQUEST = send_request("notice-0001", ["guardian-a", "guardian-b", "staff-c"])


def _row(recipient: str, channel: str, status: str = "sent", attempts: int = 1) -> DeliveryRow:
    return DeliveryRow(
        delivery_id=f"d-{recipient}-{channel}",
        message_id="notice-0001",
        recipient_id=recipient,
        channel=channel,
        address=PHONE if channel == "sms" else f"{recipient}@example.org",
        status=status,
        reason=None,
        attempts=attempts,
    )


def _text(body: str = "For A and B: Ms. Rivera: notice 1.") -> dict[str, Any]:
    return {"to": PHONE, "body": body}


def _mail(delivery_id: str) -> AcceptedMail:
    return AcceptedMail(
        message_id="sg", body={"custom_args": {"notifier_delivery_id": delivery_id}}
    )


# Guardians a and b share a phone (one text for both); staff c is emailed.
SETTLED = [_row("guardian-a", "sms"), _row("guardian-b", "sms"), _row("staff-c", "email")]


def test_a_clean_run_passes() -> None:
    verdict = judge([REQUEST], SETTLED, [_text()], [_mail("d-staff-c-email")], [], [])

    assert verdict.failures() == []
    assert (verdict.deliveries, verdict.duplicates_in_window) == (3, 0)


def test_a_recipient_with_only_queued_or_app_deliveries_is_lost() -> None:
    rows = [*SETTLED[:2], _row("staff-c", "email", status="queued"), _row("staff-c", "app")]

    verdict = judge([REQUEST], rows, [_text()], [], [], [])

    assert [lost.split(":")[0] for lost in verdict.lost] == ["notice-0001/staff-c"]
    assert len(verdict.queued) == 1


def test_a_repeat_is_allowed_only_up_to_the_attempts_of_its_delivery() -> None:
    twice = [_mail("d-staff-c-email")] * 2
    retried = [*SETTLED[:2], _row("staff-c", "email", attempts=2)]

    allowed = judge([REQUEST], retried, [_text()], twice, [], [])

    assert (allowed.failures(), allowed.duplicates_in_window) == ([], 1)
    assert allowed.sms_duplicates_in_window == 0, "an email's repeat is not a text's"
    assert judge([REQUEST], SETTLED, [_text()], twice, [], []).duplicates_outside_window
    assert judge([REQUEST], retried, [_text()], twice * 2, [], []).duplicates_outside_window


def test_a_shared_phone_texted_again_is_allowed_only_after_an_attempt_died() -> None:
    texts = [_text(), _text("For B: Ms. Rivera: notice 1.")]
    died_once = [_row("guardian-a", "sms"), _row("guardian-b", "sms", attempts=2), SETTLED[2]]
    mail = [_mail("d-staff-c-email")]

    repeated = judge([REQUEST], died_once, texts, mail, [], [])
    assert (repeated.duplicates_in_window, repeated.sms_duplicates_in_window) == (1, 1)
    assert judge([REQUEST], SETTLED, texts, mail, [], []).duplicates_outside_window


def test_a_send_no_delivery_stands_for_is_a_failure() -> None:
    stray = judge(
        [REQUEST], SETTLED, [_text(), {"to": "+15550109999", "body": "notice 1."}], [], [], []
    )

    assert stray.duplicates_outside_window


def test_dead_letters_and_deaths_fail_the_run() -> None:
    verdict = judge([REQUEST], SETTLED, [_text()], [], ["b'conv-77' {...}"], ["process 2"])

    assert len(verdict.failures()) == 2

"""Phone numbers and email addresses never reach the logs in full."""

from __future__ import annotations

import io
import logging

import pytest

from notifier.log_masking import PersonalDataFilter, mask_personal_data


@pytest.mark.parametrize(
    ("line", "masked"),
    [
        ("texting +15555550123 failed", "texting +***23 failed"),
        ("from +1 (555) 555-0177", "from +***77"),
        ("bounce for maria.gomez@example.org", "bounce for ***@example.org"),
        ("o'brien+school@mail.example.org bounced", "***@mail.example.org bounced"),
        ("partition 2 offset 1732800000000", "partition 2 offset 1732800000000"),
        (
            "delivery 6f1c2a9e-8b7d-5c4e-9a3b-2d1e0f9a8b7c",
            "delivery 6f1c2a9e-8b7d-5c4e-9a3b-2d1e0f9a8b7c",
        ),
    ],
)
def test_personal_data_is_masked_and_nothing_else(line: str, masked: str) -> None:
    assert mask_personal_data(line) == masked


def test_the_filter_masks_arguments_and_tracebacks_of_any_logger() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(PersonalDataFilter())
    logger = logging.getLogger("test.masking")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("no answer from %s for %s", "+15555550123", "ana@springfield.example")
        try:
            raise ValueError("bad address lucia@example.org")
        except ValueError:
            logger.exception("sending failed")
    finally:
        logger.removeHandler(handler)
    output = stream.getvalue()
    assert "+15555550123" not in output
    assert "ana@springfield.example" not in output
    assert "lucia@example.org" not in output
    assert "no answer from +***23 for ***@springfield.example" in output
    assert "ValueError: bad address ***@example.org" in output

"""Log lines as ops read them: JSON with the ids of what was being worked on, and no
personal data."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Literal

import pytest

from notifier.logs import configure_logging, logging_context
from notifier.request_context import current_request_id


@pytest.fixture
def root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_carry_the_context_ids_and_mask_personal_data(
    root_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO", "json")
    token = current_request_id.set("req-42")
    try:
        with logging_context(message_id="msg-1", conversation_id="conv-77"):
            with logging_context(delivery_id="d-1"):
                logging.getLogger("notifier.test").warning(
                    "no answer for %s (%s)", "+15555550123", "maria@example.org"
                )
            logging.getLogger("aiokafka.test").warning("outside the delivery")
    finally:
        current_request_id.reset(token)
    logging.getLogger("notifier.test").info("after everything")

    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    first, second, third = lines
    assert first["event"] == "no answer for +***23 (***@example.org)"
    assert (first["level"], first["logger"]) == ("warning", "notifier.test")
    assert first["timestamp"].endswith("Z")
    assert {
        k: first[k] for k in ("request_id", "message_id", "conversation_id", "delivery_id")
    } == {
        "request_id": "req-42",
        "message_id": "msg-1",
        "conversation_id": "conv-77",
        "delivery_id": "d-1",
    }
    assert "delivery_id" not in second, "the delivery's id ends with the delivery"
    assert second["message_id"] == "msg-1"
    assert not {"request_id", "message_id", "conversation_id"} & third.keys()


def test_text_lines_are_for_people(root_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "text")
    logging.getLogger("notifier.test").warning("bounce for %s", "ana@springfield.example")
    line = capsys.readouterr().err
    assert "bounce for ***@springfield.example" in line
    assert not line.startswith("{")


@pytest.mark.parametrize("style", ["json", "text"])
def test_every_record_is_masked_at_debug_with_its_traceback_and_stack(
    root_logging: None, capsys: pytest.CaptureFixture[str], style: Literal["json", "text"]
) -> None:
    configure_logging("DEBUG", style)
    token = "NmIxMzQ0Y2Q6am9yZGFuLm9rYWZvckBleGFtcGxlLm9yZw.HzwGaf6ndlHoXfUR"
    # As uvicorn writes its access line: the path is an argument of the record.
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:55078", "GET", f"/r/{token}", "1.1", 200
    )
    try:
        raise ValueError("no mailbox lucia@example.org")
    except ValueError:
        logging.getLogger("notifier.adapters.test").debug("for %s", "+15555550123", exc_info=True)
    # The stack shows this very line, address and all.
    logging.getLogger("notifier.test").debug("%s", "ana@springfield.example", stack_info=True)

    output = capsys.readouterr().err
    if style == "json":
        output = "\n".join(
            str(v) for line in output.splitlines() for v in json.loads(line).values()
        )
    for shown in (token, "lucia@example.org", "+15555550123", "ana@springfield.example"):
        assert shown not in output
    assert '"GET /r/*** HTTP/1.1" 200' in output
    assert "ValueError: no mailbox ***@example.org" in output
    assert "for +***23" in output
    assert 'debug("%s", "***@springfield.example", stack_info=True)' in output

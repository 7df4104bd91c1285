"""Log lines ops can query: JSON by default (structlog formats every stdlib record, ours
and the libraries'), each with its timestamp, level, logger, event, and the ids of what is
being worked on — the HTTP request, the message, the conversation, the delivery — and with
addresses, tokens and secrets masked (notifier.log_masking says which and how).

The masking is a processor of the one formatter on the root handler, run on every field of
the finished line (the message, the exception's traceback, the context ids) just before it
is rendered. Nothing else installs a handler: uvicorn runs with ``log_config=None``, so its
access and error logs propagate here like every library's.

The ids come from context variables set at the edges (the request middleware, the consumer
per send request, the delivery use case per delivery), so no log call has to pass them."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Literal

import structlog

from notifier.log_masking import mask_value
from notifier.request_context import current_request_id

_message_id: ContextVar[str | None] = ContextVar("message_id", default=None)
_conversation_id: ContextVar[str | None] = ContextVar("conversation_id", default=None)
_delivery_id: ContextVar[str | None] = ContextVar("delivery_id", default=None)

CONTEXT_FIELDS = ("request_id", "message_id", "conversation_id", "delivery_id")
# Written by the processors below from the record's own attributes: never data.
_UNMASKED_FIELDS = frozenset({"timestamp", "level", "logger"})


@contextmanager
def logging_context(
    *,
    message_id: str | None = None,
    conversation_id: str | None = None,
    delivery_id: str | None = None,
) -> Iterator[None]:
    """Every log line written inside names these ids (those given; the others stay)."""
    tokens = [
        (var, var.set(value))
        for var, value in (
            (_message_id, message_id),
            (_conversation_id, conversation_id),
            (_delivery_id, delivery_id),
        )
        if value is not None
    ]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class ContextFilter(logging.Filter):
    """Puts the ids of the current request, message and delivery on every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id.get()
        record.message_id = _message_id.get()
        record.conversation_id = _conversation_id.get()
        record.delivery_id = _delivery_id.get()
        return True


def _context_ids(
    logger: object, method: str, event: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    record = event.get("_record")
    for name in CONTEXT_FIELDS:
        value = getattr(record, name, None)
        if value is not None:
            event[name] = value
    return event


def _masked_fields(
    logger: object, method: str, event: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    for name, value in event.items():
        if name not in _UNMASKED_FIELDS:
            event[name] = mask_value(value)
    return event


def configure_logging(level: str, style: Literal["json", "text"]) -> None:
    shared: list[structlog.typing.Processor] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _context_ids,
        structlog.processors.format_exc_info,
    ]
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if style == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                # Last before rendering: after format_exc_info has made the traceback text.
                _masked_fields,
                renderer,
            ],
        )
    )
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # Whatever configured uvicorn's loggers before (its own dictConfig gives the access log
    # a handler of its own that doesn't propagate), their lines go through this handler
    # too, where they are masked.
    for server_logger in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(server_logger)
        logger.handlers.clear()
        logger.propagate = True
        logger.setLevel(logging.NOTSET)
    # aiokafka reports every reconnect attempt at INFO/WARNING, Alembic each plugin and
    # step of a migration: keep their chatter down.
    for chatty in ("aiokafka", "alembic"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.getLevelName(level)))

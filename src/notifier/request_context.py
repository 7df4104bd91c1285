"""The id of the HTTP request being served, for every response and log line."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

REQUEST_ID_HEADER = "X-Request-Id"
_ACCEPTED = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

current_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


def request_id_from(header: str | None) -> str:
    """The caller's id when it is a sane token (a proxy's or the core's), else a new one."""
    if header and _ACCEPTED.match(header):
        return header
    return uuid.uuid4().hex

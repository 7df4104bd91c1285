"""Typed reasons a send request cannot be processed; each maps to a dead-letter code."""

from __future__ import annotations

from enum import StrEnum


class RejectionCode(StrEnum):
    """Values of the dead-letter header ``x-notifier-error``."""

    INVALID_JSON = "invalid_json"
    SCHEMA_ERROR = "schema_error"
    TOO_MANY_RECIPIENTS = "too_many_recipients"
    UNKNOWN_DISTRICT = "unknown_district"
    UNPROCESSABLE = "unprocessable"
    """Valid by the schema, yet processing it failed in a way retrying can't fix (a value
    the database refuses, a date no calendar arithmetic survives)."""


class RequestRejected(Exception):
    """The request itself is unprocessable: retrying cannot help, so it is dead-lettered."""

    def __init__(self, code: RejectionCode, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail

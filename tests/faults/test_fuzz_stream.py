"""Property-based fuzzing of the stream edge: bad and odd input on every input topic, on the
real broker, with the real service on SQLite and on PostgreSQL.

For each input topic hypothesis generates bad messages — arbitrary bytes, text that is not
JSON, JSON of the wrong shape or nested past any parser's depth, send-request/1, recipient/1,
district/1 and conversation-state/1 documents with one field missing, of the wrong type, too
long, empty, out of range, nested one level deeper or holding control characters, CR/LF,
NUL, emoji or bidi marks, tombstones, null and non-UTF-8 keys — and valid but odd ones (the
longest allowed values, unicode everywhere, extra fields, boundary timestamps). They are
published in small groups, each followed by a good send request, and the properties are:

(a) every good request is delivered (a final event for each of its deliveries);
(b) every bad message reaches the dead-letter topic with its bytes, its key, a non-empty
    ``x-notifier-error`` code and ``x-notifier-detail``, and its source topic, partition
    and offset; the service dead-letters bad directory events too (consumer.py), so that is
    asserted for every input topic, and a valid odd message is *not* dead-lettered: a send
    request reaches each of its recipients, a directory event is stored;
(c) the consumer gets past every message (its group's committed offset moves beyond it, as
    the service commits each batch once it is done) and still delivers a final request;
(d) nobody is texted or emailed twice for one message, whatever happened on the way.

"Bad" follows the contract (contract.md, "All Kafka payloads are JSON (UTF-8), validated";
"Timestamps are RFC 3339"; "Ids are opaque strings (1–128 chars)"), not notifier's code: a
number where an RFC 3339 timestamp belongs is bad even though pydantic would read it.

How hypothesis is used: ``draw_sample`` runs a synchronous ``@given`` collector with a
derandomized seed to draw a fixed list of messages per category, then one async test
publishes them into ONE running pipeline. ``@given`` on the async test itself (pytest-asyncio
supports it) would replay and shrink examples against a service whose state — stored
directory, a consumer wedged by an earlier example — carries over from example to example,
so shrinking would chase state, not input; and a pipeline per example would not fit the
time budget. Instead a failure names the exact messages it is about (topic, key, bytes),
and because each group is checked before the next is published, a message that stops the
consumer is named precisely. When the consumer gets stuck, the run does what an operator
would — stop the service, move its group past the group of messages, start it again — and
goes on, so one run names every message that stops it (up to MAX_STUCK). One test per input
topic and database.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from hypothesis import strategies as st
from sqlalchemy.exc import DBAPIError

from notifier.config import DatabaseSettings, Settings
from tests.conftest import kafka_bootstrap
from tests.databases import Backend, fresh_database
from tests.fakes.sendgrid_server import FakeSendGrid
from tests.fakes.twilio_server import FakeTwilio
from tests.faults.fuzzing import (
    BACKENDS,
    draw_sample,
    hostile_text,
    huge_text,
    json_values,
    preview,
)
from tests.faults.harness import FaultSummary
from tests.test_pipeline_kafka import (
    DIRECTORY,
    DISTRICT,
    Pipeline,
    Topic,
    _final,
    recipient,
    running_pipeline,
    send_request,
)

pytestmark = pytest.mark.kafka

PROCESS_SECONDS = 6.0
"""How long the consumer may take to get past a group of messages. A healthy service takes a
fraction of a second; a batch that raises is retried after 1, 2, 5, 10 and 30 s, forever."""
MAX_STUCK = 4
"""Times the consumer may get stuck before a run gives up: each time, the run does what an
operator would (stop the service, move its group past the messages, start it again) and goes
on, so that one run names every message that stops the consumer, up to this many."""
GRACEFUL_SECONDS = 2.0
RESTART_SECONDS = 30.0
"""How long a restarted service may take to rejoin its group and deliver a good request."""
RUN_SECONDS = 240.0
"""A bound on one topic's whole run, so that a broker that went away fails it, not hangs it."""
OUTCOME_SECONDS = 10.0
"""Longest wait to read the output topics up to their ends."""
GROUP_SIZE = 4
SENDER = "staff-rivera"
SENTINEL_RECIPIENTS = {
    ("guardian-dennis", "sms"),
    ("guardian-dennis", "app"),
    ("staff-chen", "email"),
    ("staff-chen", "app"),
}
FUZZ_DISTRICT = "d-fuzz"
PROBES = ("fuzz-staff", "fuzz-guardian")
"""Two people (emailed and texted) sent a message in each valid fuzzed district: a district
with any valid settings must still have its messages delivered."""
DIRECTORY_IDS = [person["id"] for person in DIRECTORY]
ERROR_CODE = re.compile(r"^[a-z][a-z0-9_]*$")
BODY_TAG = re.compile(r"\[((?:fuzz|good)-[0-9a-z-]+)\]")
"""The tag each request's body starts with (see finish and Run.good_request)."""

# The contract's value syntax (contract.md, wire.py): what a valid value looks like.
LANGUAGE_TAG = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
E164_DIGITS = re.compile(r"^\+[1-9][0-9]{6,14}$")
"""E.164 as generated: ASCII digits only (\\d would also draw other scripts' digits)."""
DOMAIN = re.compile(r"^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$")
BOOL_WORDS = {"0", "off", "f", "false", "n", "no", "1", "on", "t", "true", "y", "yes"}
"""Strings pydantic reads as booleans: not "the wrong type" for a boolean field."""


class Expect(StrEnum):
    REJECTED = "dead-lettered with a reason"
    DELIVERED = "delivered to each recipient"
    STORED = "stored, not dead-lettered"
    HANDLED = "delivered, stored or dead-lettered (not stuck)"
    """Valid by the contract but beyond what the service need support (year 1, year 9999)."""


TopicKind = Literal["send-requests", "recipients", "districts", "conversation-state"]


# -- What is generated ------------------------------------------------------------------------


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING = _Missing()
"""A mutation's value meaning "leave the field out"."""
NATURAL_KEY = b"<natural>"
"""A draft's key meaning "the document's own id", as the contract keys each topic."""


@dataclass(frozen=True)
class Draft:
    """A message as drawn, before it is given unique ids: either a JSON ``document`` (the
    base document with one change) or ``raw`` bytes, or neither (a tombstone)."""

    what: str
    expect: Expect
    document: dict[str, Any] | None = None
    raw: bytes | None = None
    key: bytes | None = NATURAL_KEY
    touched: str = ""
    """The top-level field that was changed: its value is kept as drawn."""

    def shown(self) -> str:
        if self.document is None or not self.touched:
            return ""
        value = self.document.get(self.touched, "<missing>")
        return preview(json.dumps(value, ensure_ascii=False), 400)


@dataclass(frozen=True)
class Fuzzed:
    """A message as published, and what must become of it."""

    what: str
    topic: str
    value: bytes | None
    key: bytes | None
    expect: Expect
    message_id: str | None = None
    recipient_ids: frozenset[str] = frozenset()
    stored: Callable[[Pipeline], Any] | None = None
    """For STORED: reads the store and says whether this message is in it."""
    field_value: str = ""
    """The changed field's value, for the report."""
    district_id: str | None = None
    """For a valid district: its id, to send it a request."""

    def describe(self) -> str:
        changed = f"{self.field_value}; " if self.field_value else ""
        return f"{self.what} ({changed}key {preview(self.key, 60)}, value {preview(self.value)})"


@dataclass
class Published:
    message: Fuzzed
    partition: int
    offset: int


@dataclass(frozen=True)
class Spec:
    """One field of a wire document and the contract's rule for it."""

    path: tuple[str | int, ...]
    kind: Literal[
        "literal",
        "id",
        "text",
        "enum",
        "tag",
        "url",
        "phone",
        "email",
        "domain",
        "timestamp",
        "zone",
        "int",
        "bool",
        "object",
        "list",
        "tag_map",
        "role_map",
    ]
    required: bool = True
    nullable: bool = False
    min_len: int = 0
    max_len: int | None = None
    choices: tuple[str, ...] = ()
    low: int | None = None
    high: int | None = None

    @property
    def name(self) -> str:
        return ".".join(str(part) for part in self.path)


SEND_REQUEST = [
    Spec(("schema",), "literal", choices=("send-request/1",)),
    Spec(("request_id",), "id", min_len=1, max_len=128),
    Spec(("message_id",), "id", min_len=1, max_len=128),
    Spec(("conversation_id",), "id", min_len=1, max_len=128),
    Spec(("conversation_title",), "text", required=False, nullable=True, max_len=200),
    Spec(("district_id",), "id", min_len=1, max_len=128),
    Spec(("kind",), "enum", choices=("conversation.message", "system")),
    Spec(("sender",), "object"),
    Spec(("sender", "id"), "id", min_len=1, max_len=128),
    Spec(("sender", "display_name"), "text", min_len=1, max_len=200),
    Spec(("sender", "role"), "text", max_len=64),
    Spec(("body",), "text", min_len=1, max_len=20_000),
    Spec(("language",), "tag", max_len=35),
    Spec(("translations",), "tag_map", required=False),
    Spec(("attachments",), "list", required=False, max_len=20),
    Spec(("attachments", 0, "filename"), "text", min_len=1, max_len=255),
    Spec(("attachments", 0, "url"), "url", max_len=2048),
    Spec(("attachments", 0, "size_bytes"), "int", required=False, nullable=True, low=0),
    Spec(("recipients",), "list", min_len=1, max_len=50),
    Spec(("recipients", 0, "id"), "id", min_len=1, max_len=128),
    Spec(("created_at",), "timestamp"),
]
RECIPIENT = [
    Spec(("schema",), "literal", choices=("recipient/1",)),
    Spec(("id",), "id", min_len=1, max_len=128),
    Spec(("district_id",), "id", min_len=1, max_len=128),
    Spec(("display_name",), "text", min_len=1, max_len=200),
    Spec(("first_name",), "text", required=False, max_len=100),
    Spec(("role",), "enum", choices=("guardian", "staff", "student")),
    Spec(("language",), "tag", required=False, nullable=True, max_len=35),
    Spec(
        ("preferred_channel",),
        "enum",
        required=False,
        nullable=True,
        choices=("sms", "email", "app"),
    ),
    Spec(("phone",), "phone", required=False, nullable=True),
    Spec(("email",), "email", required=False, nullable=True),
    Spec(("app",), "bool", required=False),
    Spec(("updated_at",), "timestamp"),
]
DISTRICT_SPECS = [
    Spec(("schema",), "literal", choices=("district/1",)),
    Spec(("id",), "id", min_len=1, max_len=128),
    Spec(("name",), "text", min_len=1, max_len=200),
    Spec(("default_channel",), "enum", required=False, choices=("sms", "email")),
    Spec(("role_channels",), "role_map", required=False),
    Spec(("default_language",), "tag", required=False, max_len=35),
    Spec(("languages",), "list", required=False),
    Spec(("languages", 0), "tag", max_len=35),
    Spec(("sms_label",), "bool", required=False),
    Spec(("max_recipients",), "int", required=False, low=1, high=50),
    Spec(("timezone",), "zone", required=False),
    Spec(("sms_sender",), "text", required=False, nullable=True, min_len=1, max_len=64),
    Spec(("email_from",), "object", required=False, nullable=True),
    Spec(("email_from", "email"), "email"),
    Spec(("email_from", "name"), "text", required=False, nullable=True, max_len=200),
    Spec(("sms_max_segments",), "int", required=False, low=1, high=10),
    Spec(
        ("shared_phone_languages",), "enum", required=False, choices=("per_language", "bilingual")
    ),
    Spec(("deferred_failover_minutes",), "int", required=False, nullable=True, low=1, high=4320),
    Spec(("reply_domain",), "domain", required=False, nullable=True, max_len=253),
]
CONVERSATION_STATE = [
    Spec(("schema",), "literal", choices=("conversation-state/1",)),
    Spec(("conversation_id",), "id", min_len=1, max_len=128),
    Spec(("status",), "enum", choices=("open", "stopped")),
    Spec(("muted_by",), "list", required=False, max_len=200),
    Spec(("muted_by", 0), "id", min_len=1, max_len=128),
    Spec(("updated_at",), "timestamp"),
]


def base_send_request() -> dict[str, Any]:
    return send_request(
        "fuzz-message",
        ["guardian-dennis", "staff-chen"],
        request_id="fuzz-request",
        conversation_title="Field trip",
        created_at="2026-11-28T15:00:00Z",
        attachments=[
            {"filename": "form.pdf", "url": "https://files.example/f/9", "size_bytes": 48213}
        ],
    )


def base_recipient() -> dict[str, Any]:
    return recipient(
        "fuzz-person",
        "Ana",
        "guardian",
        language="es",
        phone="+15555550166",
        email="ana@example.org",
        preferred_channel="email",
    )


def base_district() -> dict[str, Any]:
    return DISTRICT | {
        "id": FUZZ_DISTRICT,
        "name": "Fuzz District",
        "timezone": "Asia/Tokyo",
        "sms_max_segments": 3,
        "shared_phone_languages": "per_language",
        "deferred_failover_minutes": 60,
    }


def base_conversation_state() -> dict[str, Any]:
    return {
        "schema": "conversation-state/1",
        "conversation_id": "conv-fuzz",
        "status": "open",
        "muted_by": ["guardian-lucia"],
        "updated_at": "2026-11-28T10:00:00Z",
    }


@dataclass(frozen=True)
class TopicFuzz:
    """What is fuzzed on one input topic."""

    kind: TopicKind
    specs: list[Spec]
    base: Callable[[], dict[str, Any]]
    natural_key: str
    """The field the contract keys the topic by."""
    unique: str
    """The field made unique per message (unless it is the one fuzzed)."""

    def __repr__(self) -> str:
        return self.kind


TOPICS: dict[TopicKind, TopicFuzz] = {
    "send-requests": TopicFuzz(
        "send-requests", SEND_REQUEST, base_send_request, "conversation_id", "message_id"
    ),
    "recipients": TopicFuzz("recipients", RECIPIENT, base_recipient, "id", "id"),
    "districts": TopicFuzz("districts", DISTRICT_SPECS, base_district, "id", "id"),
    "conversation-state": TopicFuzz(
        "conversation-state",
        CONVERSATION_STATE,
        base_conversation_state,
        "conversation_id",
        "conversation_id",
    ),
}


# -- Values: valid but odd, and invalid --------------------------------------------------------


def kept_as_is(text: str) -> bool:
    """Stripping (the wire models strip whitespace) leaves it unchanged and non-empty."""
    return bool(text) and text == text.strip()


def storable(text: str) -> bool:
    """Without U+0000, which notifier refuses everywhere (README, "Guarantees"): PostgreSQL
    can't store it, and no id, name or message needs it. The contract doesn't say."""
    return "\x00" not in text


def odd_text(min_len: int, max_len: int | None) -> st.SearchStrategy[str]:
    """Valid text for a field: anything, within its length, never all whitespace or NUL."""
    longest = max_len if max_len is not None else 5000
    exact = st.sampled_from(["x", "é", "🎉", "表", "ﷺ"]).map(lambda unit: unit * longest)
    return st.one_of(
        hostile_text(min_size=max(min_len, 1), max_size=min(longest, 80))
        .filter(kept_as_is)
        .filter(storable),
        exact,
    )


def odd_id() -> st.SearchStrategy[str]:
    return odd_text(1, 128)


BOUNDARY_TIMESTAMPS = [
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59-01:00",
    "9999-12-31T23:59:59Z",
    "1970-01-01T00:00:00Z",
    "2026-11-28T15:00:00.123456789Z",
]
"""RFC 3339 timestamps at the ends of the range: years 1 and 9999 (one with an offset that
takes it past the end in UTC), the epoch, nanoseconds."""


def odd_timestamps() -> st.SearchStrategy[str]:
    """RFC 3339 timestamps anywhere in years 1 to 9999, with far offsets."""
    offsets = st.sampled_from(
        [UTC, timezone(timedelta(hours=14)), timezone(-timedelta(hours=12)), timezone.min]
    )
    return st.datetimes(
        min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59), timezones=offsets
    ).map(lambda moment: moment.isoformat())


def email_addresses() -> st.SearchStrategy[str]:
    local = st.text(
        alphabet=st.sampled_from("abcxyz0189._%+-éü名"), min_size=1, max_size=30
    ).filter(lambda text: not text.startswith(".") and not text.endswith("."))
    domain = st.lists(st.from_regex(r"[a-z0-9]{1,12}", fullmatch=True), min_size=1, max_size=3)
    return st.builds(
        lambda name, labels, tld: f"{name}@{'.'.join(labels)}.{tld}",
        local,
        domain,
        st.sampled_from(["org", "example", "co", "xn--p1ai"]),
    )


def valid_value(spec: Spec) -> st.SearchStrategy[Any]:
    """Valid values for the field, preferring odd ones."""
    strategies: list[st.SearchStrategy[Any]] = []
    if spec.kind == "literal":
        strategies.append(st.sampled_from(spec.choices))
    elif spec.kind == "id":
        strategies.append(odd_id())
    elif spec.kind == "text":
        strategies.append(odd_text(spec.min_len, spec.max_len))
    elif spec.kind == "enum":
        strategies.append(st.sampled_from(spec.choices))
    elif spec.kind == "tag":
        strategies.append(
            st.from_regex(LANGUAGE_TAG, fullmatch=True).filter(lambda tag: len(tag) <= 35)
        )
        strategies.append(st.sampled_from(["es", "zh-Hant", "ZH-hant-TW", "ar", "xx", "tlh"]))
    elif spec.kind == "url":
        strategies.append(
            st.builds(
                lambda scheme, rest: scheme + rest,
                st.sampled_from(["https://", "http://"]),
                hostile_text(max_size=200)
                .filter(lambda text: text == text.rstrip())
                .filter(storable),
            )
        )
    elif spec.kind == "phone":
        strategies.append(st.from_regex(E164_DIGITS, fullmatch=True))
    elif spec.kind == "email":
        strategies.append(email_addresses())
    elif spec.kind == "domain":
        strategies.append(
            st.from_regex(DOMAIN, fullmatch=True).filter(lambda domain: len(domain) <= 253)
        )
    elif spec.kind == "zone":
        strategies.append(st.sampled_from(ZONES))
    elif spec.kind == "int":
        low = spec.low if spec.low is not None else -(2**63)
        high = spec.high if spec.high is not None else 2**63 - 1
        strategies.append(st.integers(low, high))
        strategies.append(st.sampled_from([low, high]))
    elif spec.kind == "bool":
        strategies.append(st.booleans())
    elif spec.kind == "tag_map":
        strategies.append(
            st.dictionaries(
                st.from_regex(LANGUAGE_TAG, fullmatch=True).filter(lambda tag: len(tag) <= 35),
                # A translation is a whole message: never empty.
                hostile_text(min_size=1, max_size=300).filter(kept_as_is).filter(storable),
                max_size=5,
            )
        )
    elif spec.kind == "role_map":
        strategies.append(
            st.dictionaries(
                st.sampled_from(["guardian", "staff", "student"]),
                st.sampled_from(["sms", "email", "app"]),
            )
        )
    if spec.nullable:
        strategies.append(st.none())
    if not spec.required:
        strategies.append(st.just(MISSING))
    return st.one_of(strategies) if strategies else st.nothing()


def not_a_timestamp() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(
            [
                "2026-02-30T00:00:00Z",
                "2026-11-28T25:00:00Z",
                "2026-11-28T15:00:00",
                "2026-11-28",
                "2026-11-28T15:00:00+25:00",
                "28/11/2026 15:00",
                "",
                "yesterday",
            ]
        ),
        hostile_text().filter(lambda text: not any(char.isdigit() for char in text)),
        st.booleans(),
        st.lists(json_values(max_leaves=3), max_size=2),
        st.dictionaries(hostile_text(max_size=5), json_values(max_leaves=3), max_size=2),
    )


def wrong_type(spec: Spec) -> st.SearchStrategy[Any]:
    """Values of a JSON type the field does not take."""
    lists = st.lists(json_values(max_leaves=3), max_size=3)
    objects = st.dictionaries(hostile_text(max_size=8), json_values(max_leaves=3), max_size=3)
    numbers = st.one_of(st.integers(), st.floats(allow_nan=False, allow_infinity=False))
    strategies: list[st.SearchStrategy[Any]]
    if spec.kind == "timestamp":
        return not_a_timestamp()
    if spec.kind in ("int",):
        strategies = [
            lists,
            objects,
            st.floats(allow_nan=False, allow_infinity=False).filter(
                lambda number: not number.is_integer()
            ),
            hostile_text(min_size=1).filter(lambda text: not any(c.isdigit() for c in text)),
        ]
    elif spec.kind == "bool":
        strategies = [
            lists,
            objects,
            st.integers().filter(lambda number: number not in (0, 1)),
            hostile_text().filter(lambda text: text.strip().lower() not in BOOL_WORDS),
        ]
    elif spec.kind in ("object", "tag_map", "role_map"):
        strategies = [lists, numbers, st.booleans(), hostile_text()]
    elif spec.kind == "list":
        strategies = [objects, numbers, st.booleans(), hostile_text()]
    else:
        strategies = [lists, objects, numbers, st.booleans()]
    if not spec.nullable:
        strategies.append(st.none())
    return st.one_of(strategies)


NESTED = "nested one level deeper"


def invalid_value(spec: Spec) -> st.SearchStrategy[tuple[str, Any]]:
    """(what is wrong, the value) for values the contract refuses. NESTED's value is filled
    in by the caller: the field's own value, inside a list."""
    strategies: list[st.SearchStrategy[tuple[str, Any]]] = [
        wrong_type(spec).map(lambda value: ("of the wrong type", value)),
        st.just((NESTED, None)),
    ]
    if spec.required and not isinstance(spec.path[-1], int):  # a list's entry isn't a field
        strategies.append(st.just(("missing", MISSING)))
    if spec.kind in ("id", "text") and spec.max_len is not None:
        strategies.append(huge_text(spec.max_len).map(lambda text: ("too long", text)))
    if spec.kind in ("id", "text"):
        nul = st.sampled_from(["\x00", "a\x00b", "Ms.\x00Rivera"])
        strategies.append(nul.map(lambda text: ("holding NUL", text)))
    if spec.min_len >= 1 and spec.kind in ("id", "text"):
        blank = st.sampled_from(["", " ", "\t\r\n", "\u3000"])
        strategies.append(blank.map(lambda text: ("empty or blank", text)))
    if spec.kind == "literal":
        strategies.append(
            st.sampled_from(
                ["send-request/2", "recipient/2", "district/0", "SEND-REQUEST/1", "", "v1"]
            )
            .filter(lambda text: text not in spec.choices)
            .map(lambda text: ("an unknown schema", text))
        )
    elif spec.kind == "enum":
        strategies.append(
            st.one_of(hostile_text(), st.sampled_from([c.upper() for c in spec.choices]))
            .filter(lambda text: text.strip() not in spec.choices)
            .map(lambda text: ("not one of the allowed values", text))
        )
    elif spec.kind == "tag":
        strategies.append(
            st.one_of(
                hostile_text(), st.sampled_from(["e", "english", "en_US", "en-", "-en", "e1"])
            )
            .filter(lambda text: not LANGUAGE_TAG.match(text.strip()) or len(text.strip()) > 35)
            .map(lambda text: ("not a language tag", text))
        )
    elif spec.kind == "url":
        strategies.append(
            st.one_of(hostile_text(min_size=1), st.sampled_from(["ftp://x/y", "javascript:1"]))
            .filter(lambda text: not re.match(r"^https?://", text.strip()) and text.strip())
            .map(lambda text: ("not an http(s) URL", text))
        )
    elif spec.kind == "phone":
        strategies.append(
            st.one_of(hostile_text(min_size=1), st.sampled_from(["5555550123", "+0123456789"]))
            .filter(lambda text: not E164.match(text.strip()))
            .map(lambda text: ("not an E.164 number", text))
        )
    elif spec.kind == "email":
        strategies.append(
            st.one_of(hostile_text(min_size=1), st.sampled_from(["no-at-sign.org", "a@b"]))
            .filter(lambda text: "@" not in text or "." not in text.partition("@")[2])
            .map(lambda text: ("not an email address", text))
        )
    elif spec.kind == "domain":
        strategies.append(
            hostile_text(min_size=1)
            .filter(lambda text: not DOMAIN.match(text.strip()))
            .map(lambda text: ("not a domain", text))
        )
    elif spec.kind == "zone":
        strategies.append(
            st.one_of(st.sampled_from(NOT_ZONES), hostile_text(min_size=1))
            .filter(lambda text: text.strip() not in ZONES)
            .map(lambda text: ("not a time zone", text))
        )
    elif spec.kind == "int":
        outside: list[int] = []
        if spec.low is not None:
            outside += [spec.low - 1, spec.low - 2**40]
        if spec.high is not None:
            outside += [spec.high + 1, spec.high + 2**62]
        if outside:
            strategies.append(st.sampled_from(outside).map(lambda number: ("out of range", number)))
    elif spec.kind == "tag_map":
        strategies.append(
            st.sampled_from([{"english": "x"}, {"es": 5}, {"es": None}, {"": "x"}]).map(
                lambda value: ("with a bad entry", value)
            )
        )
    elif spec.kind == "role_map":
        strategies.append(
            st.sampled_from([{"parent": "sms"}, {"guardian": "fax"}, {"guardian": None}]).map(
                lambda value: ("with a bad entry", value)
            )
        )
    elif spec.kind == "list":
        if spec.min_len >= 1:
            strategies.append(st.just(("empty", [])))
        if spec.max_len is not None:
            longest = spec.max_len
            strategies.append(
                st.integers(longest + 1, longest + 10).map(
                    lambda count: ("with too many entries", count)
                )
            )
    return st.one_of(strategies)


# -- Documents ---------------------------------------------------------------------------------


def with_value(document: dict[str, Any], path: Sequence[str | int], value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(document)
    holder: Any = changed
    for part in path[:-1]:
        holder = holder[part]
    if value is MISSING:
        del holder[path[-1]]
    else:
        holder[path[-1]] = value
    return changed


def at(document: dict[str, Any], path: Sequence[str | int]) -> Any:
    value: Any = document
    for part in path:
        value = value[part]
    return value


def many(document: dict[str, Any], spec: Spec, count: int) -> list[Any]:
    """``count`` entries for a list field: copies of the base document's first one."""
    first = at(document, spec.path)[0]
    if spec.path == ("recipients",):
        return [{"id": f"guardian-{n}"} for n in range(count)]
    return [copy.deepcopy(first) for _ in range(count)]


@st.composite
def invalid_documents(draw: st.DrawFn, fuzz: TopicFuzz) -> Draft:
    """The base document with one field made invalid."""
    document = fuzz.base()
    specs = [spec for spec in fuzz.specs if present(document, spec.path)]
    spec = draw(st.sampled_from(specs))
    problem, value = draw(invalid_value(spec))
    if problem == "with too many entries":
        value = many(document, spec, value)
    elif problem == NESTED:
        value = [at(document, spec.path)]
    return Draft(
        f"{fuzz.kind} with {spec.name} {problem}",
        Expect.REJECTED,
        document=with_value(document, spec.path, value),
        key=draw(keys(fuzz)),
        touched=str(spec.path[0]),
    )


def present(document: dict[str, Any], path: Sequence[str | int]) -> bool:
    try:
        at(document, path[:-1])
    except (KeyError, IndexError, TypeError):
        return False
    return True


@st.composite
def odd_documents(draw: st.DrawFn, fuzz: TopicFuzz) -> Draft:
    """The base document with one field valid but odd, or with fields the contract doesn't
    know (which are ignored), or — for send requests — odd recipient lists."""
    document = fuzz.base()
    expect = Expect.DELIVERED if fuzz.kind == "send-requests" else Expect.STORED
    choice = draw(st.sampled_from(["field", "field", "field", "unknown fields", "recipients"]))
    if choice == "recipients" and fuzz.kind == "send-requests":
        recipients = draw(
            st.lists(
                st.one_of(st.sampled_from([*DIRECTORY_IDS, SENDER]), odd_id()),
                min_size=1,
                max_size=int(DISTRICT["max_recipients"]),
            )
        )
        return Draft(
            "send-request/1 with odd recipients (unknown, repeated, the sender)",
            expect,
            document=document | {"recipients": [{"id": person} for person in recipients]},
            key=draw(keys(fuzz)),
            touched="recipients",
        )
    if choice == "unknown fields":
        known = {str(spec.path[0]) for spec in fuzz.specs} | {"schema_"}
        extra = draw(
            st.dictionaries(
                hostile_text(min_size=1, max_size=20).filter(lambda name: name not in known),
                json_values(),
                min_size=1,
                max_size=4,
            )
        )
        return Draft(
            f"{fuzz.kind} with unknown fields",
            expect,
            document=document | extra,
            key=draw(keys(fuzz)),
        )
    specs = [
        spec
        for spec in fuzz.specs
        if present(document, spec.path)
        and spec.kind not in ("object", "list", "timestamp", "literal")
        # An unknown district is a rejection, not an odd value (see contract_rejections).
        and not (fuzz.kind == "send-requests" and spec.path == ("district_id",))
    ]
    spec = draw(st.sampled_from(specs))
    return Draft(
        f"{fuzz.kind} with {spec.name} = an odd valid value",
        expect,
        document=with_value(document, spec.path, draw(valid_value(spec))),
        key=draw(keys(fuzz)),
        touched=str(spec.path[0]),
    )


ZONES = ["America/Chicago", "Etc/GMT+12", "Pacific/Kiritimati", "UTC", "America/Port-au-Prince"]
"""IANA time zones, with the far ends of the offsets."""
NOT_ZONES = ["../../etc/passwd", "/etc/localtime", "Mars/Olympus_Mons", "utc", "America/"]
"""district/1 shows ``timezone`` as an IANA name (the contract says no more); notifier refuses
any other: zones that don't exist, and paths (the zone database is a directory tree)."""


@st.composite
def odd_time_zones(draw: st.DrawFn, fuzz: TopicFuzz) -> Draft:
    zone = draw(st.one_of(st.sampled_from([*ZONES, *NOT_ZONES]), odd_text(1, 60)))
    return Draft(
        "district/1 with an odd time zone",
        Expect.STORED if zone.strip() in ZONES else Expect.REJECTED,
        document=fuzz.base() | {"timezone": zone},
        key=draw(keys(fuzz)),
        touched="timezone",
    )


def boundary_timestamps(fuzz: TopicFuzz) -> st.SearchStrategy[Draft]:
    """Each of BOUNDARY_TIMESTAMPS once (a finite strategy, which hypothesis exhausts): the
    service may refuse them, but must not get stuck on them."""
    name = "created_at" if fuzz.kind == "send-requests" else "updated_at"
    return st.sampled_from(BOUNDARY_TIMESTAMPS).map(
        lambda moment: Draft(
            f"{fuzz.kind} with {name} at a boundary",
            Expect.HANDLED,
            document=fuzz.base() | {name: moment},
            touched=name,
        )
    )


@st.composite
def odd_time_of_day(draw: st.DrawFn, fuzz: TopicFuzz) -> Draft:
    name = "created_at" if fuzz.kind == "send-requests" else "updated_at"
    return Draft(
        f"{fuzz.kind} with an odd {name}",
        Expect.HANDLED,
        document=fuzz.base() | {name: draw(odd_timestamps())},
        key=draw(keys(fuzz)),
        touched=name,
    )


@st.composite
def numeric_timestamps(draw: st.DrawFn, fuzz: TopicFuzz) -> Draft:
    """The contract's timestamps are RFC 3339 strings; a number is not one."""
    document = fuzz.base()
    name = "created_at" if fuzz.kind == "send-requests" else "updated_at"
    number = draw(
        st.one_of(
            st.integers(0, 2**31),
            st.integers(0, 2**31).map(str),
            st.floats(0, 2e9, allow_nan=False),
        )
    )
    return Draft(
        f"{fuzz.kind} with {name} a number ({number!r}), not an RFC 3339 string",
        Expect.REJECTED,
        document=document | {name: number},
        key=draw(keys(fuzz)),
        touched=name,
    )


@st.composite
def garbage(draw: st.DrawFn, fuzz: TopicFuzz) -> Draft:
    """Messages that are not a document of the topic at all."""
    valid = orjson.dumps(fuzz.base())
    other = base_recipient() if fuzz.kind != "recipients" else base_send_request()
    kind = draw(
        st.sampled_from(
            [
                "arbitrary bytes",
                "text that is not JSON",
                "a cut-off document",
                "JSON of the wrong shape",
                "JSON nested past any parser's depth",
                "JSON nested 200 deep",
                "a document of another topic",
                "the document in UTF-16",
            ]
        )
    )
    raw: bytes
    if kind == "arbitrary bytes":
        raw = draw(st.binary(max_size=3000))
    elif kind == "text that is not JSON":
        raw = draw(
            hostile_text(min_size=1).filter(lambda text: not _is_json(text.encode()))
        ).encode()
    elif kind == "a cut-off document":
        raw = valid[: draw(st.integers(0, len(valid) - 1))]
    elif kind == "JSON of the wrong shape":
        raw = json.dumps(
            draw(json_values().filter(lambda value: not isinstance(value, dict) or not value)),
            ensure_ascii=False,
        ).encode()
    elif kind == "JSON nested past any parser's depth":
        depth = draw(st.integers(1100, 100_000))
        raw = b"[" * depth + b"]" * depth
    elif kind == "JSON nested 200 deep":
        raw = b'{"schema":' * 200 + b"1" + b"}" * 200
    elif kind == "a document of another topic":
        raw = orjson.dumps(other)
    else:
        raw = json.dumps(fuzz.base(), ensure_ascii=False).encode("utf-16")
    return Draft(f"{fuzz.kind}: {kind}", Expect.REJECTED, raw=raw, key=draw(keys(fuzz)))


def _is_json(raw: bytes) -> bool:
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError:
        return False
    return True


@st.composite
def tombstones(draw: st.DrawFn, fuzz: TopicFuzz) -> Draft:
    """A null value: deletes a directory entry; a send request that has no value is bad."""
    not_utf8 = st.sampled_from([b"\xff\xfe", b"\xc3\x28", b"\x80abc", b"\xed\xa0\x80"])
    key = draw(st.one_of(not_utf8, keys(fuzz), st.binary(min_size=2, max_size=40)))
    if fuzz.kind == "send-requests":
        return Draft("send-requests: a tombstone", Expect.REJECTED, key=key)
    return Draft(f"{fuzz.kind}: a tombstone", Expect.HANDLED, key=key)


@st.composite
def contract_rejections(draw: st.DrawFn, fuzz: TopicFuzz) -> Draft:
    """Valid documents the contract still refuses: an unknown district, more recipients
    than the district allows."""
    document = fuzz.base()
    if draw(st.booleans()):
        district = draw(odd_id().filter(lambda text: text not in ("d-springfield", FUZZ_DISTRICT)))
        return Draft(
            "send-request/1 for an unknown district",
            Expect.REJECTED,
            document=document | {"district_id": district},
            key=draw(keys(fuzz)),
            touched="district_id",
        )
    count = draw(st.integers(int(DISTRICT["max_recipients"]) + 1, 50))
    return Draft(
        f"send-request/1 for {count} recipients (the district allows 15)",
        Expect.REJECTED,
        document=document | {"recipients": [{"id": f"guardian-{n}"} for n in range(count)]},
        key=draw(keys(fuzz)),
        touched="recipients",
    )


def keys(fuzz: TopicFuzz) -> st.SearchStrategy[bytes | None]:
    """The contract's key most often; else none (not on the compacted directory topics,
    where Kafka refuses a record without a key), empty, arbitrary bytes or odd text."""
    choices: list[st.SearchStrategy[bytes | None]] = [
        st.just(NATURAL_KEY),
        st.just(NATURAL_KEY),
        st.just(b""),
        st.binary(min_size=1, max_size=40),
        hostile_text(min_size=1, max_size=40).map(str.encode),
    ]
    if fuzz.kind == "send-requests":
        choices.append(st.none())
    return st.one_of(choices)


def sample(fuzz: TopicFuzz) -> list[Draft]:
    """The messages fuzzed on one topic, in a fixed order, each category interleaved."""
    plan: list[tuple[Callable[[TopicFuzz], st.SearchStrategy[Draft]], int]] = [
        (garbage, 6),
        (invalid_documents, 18),
        (odd_documents, 14),
    ]
    if fuzz.kind == "districts":  # districts carry no timestamp, but a time zone
        plan += [(odd_time_zones, 4)]
    else:
        plan += [
            (boundary_timestamps, len(BOUNDARY_TIMESTAMPS)),
            (odd_time_of_day, 2),
            (numeric_timestamps, 2),
        ]
    if fuzz.kind == "send-requests":
        plan += [(contract_rejections, 3), (tombstones, 1)]
    else:
        plan += [(tombstones, 4)]
    drawn = [draw_sample(category(fuzz), count) for category, count in plan]
    interleaved: list[Draft] = []
    for index in range(max(len(examples) for examples in drawn)):
        interleaved += [examples[index] for examples in drawn if index < len(examples)]
    return interleaved


# -- Publishing and checking ------------------------------------------------------------------


def topic_name(line: Pipeline, kind: TopicKind) -> str:
    kafka = line.settings.kafka
    return {
        "send-requests": kafka.send_requests_topic,
        "recipients": kafka.recipients_topic,
        "districts": kafka.districts_topic,
        "conversation-state": kafka.conversation_state_topic,
    }[kind]


def finish(draft: Draft, fuzz: TopicFuzz, topic: str, number: int, run: str) -> Fuzzed:
    """Gives the draft its unique ids and encodes it; says what must become of it."""
    if draft.document is None:
        key = draft.key if draft.key is not NATURAL_KEY else b"fuzz-tombstoned"
        return Fuzzed(draft.what, topic, draft.raw, key, draft.expect)
    document = draft.document
    unique = f"fuzz-{run}-{number}"
    if draft.touched != fuzz.unique:
        document = document | {fuzz.unique: unique}
    if fuzz.kind == "send-requests" and draft.touched != "request_id":
        document = document | {"request_id": f"{unique}-request"}
    if fuzz.kind == "send-requests" and draft.touched != "body" and "body" in document:
        # Tagged, so that each text can be told apart (see duplicate_sends).
        document = document | {"body": f"[{unique}] {document['body']}"}
    natural = document.get(fuzz.natural_key)
    if draft.key is NATURAL_KEY:
        key = natural.encode() if isinstance(natural, str) else b"fuzz"
    else:
        key = draft.key
    value = json.dumps(document, ensure_ascii=False).encode()
    message = Fuzzed(draft.what, topic, value, key, draft.expect, field_value=draft.shown())
    if fuzz.kind == "send-requests" and draft.expect in (Expect.DELIVERED, Expect.HANDLED):
        sender = document["sender"]["id"]
        return replace(
            message,
            message_id=document["message_id"],
            recipient_ids=frozenset(r["id"] for r in document["recipients"]) - {sender},
        )
    if draft.expect is Expect.STORED:
        message = replace(message, stored=stored_check(fuzz, document))
    if fuzz.kind == "districts" and draft.expect is not Expect.REJECTED:
        message = replace(message, district_id=document["id"])
    return message


def stored_check(fuzz: TopicFuzz, document: dict[str, Any]) -> Callable[[Pipeline], Any]:
    async def stored(line: Pipeline) -> bool:
        assert line.container is not None
        store = line.container.store
        try:
            if fuzz.kind == "recipients":
                return document["id"] in await store.directory.recipients([document["id"]])
            if fuzz.kind == "districts":
                district = await store.directory.district(document["id"])
                return district is not None and district.name == document["name"].strip()
            return await store.directory.conversation_state(document["conversation_id"]) is not None
        except DBAPIError:  # PostgreSQL refuses even to look up some ids (NUL): not stored
            return False

    return stored


@dataclass
class Run:
    """One pipeline being fuzzed on one topic, and what it has been seen to do."""

    line: Pipeline
    fuzz: TopicFuzz
    admin: AIOKafkaAdminClient
    events: Topic
    dead_letters: Topic
    restarts: AsyncExitStack
    """Holds the databases of restarted services (see skip)."""
    tmp_path: Path
    backend: Backend
    problems: list[str] = field(default_factory=list)
    good_requests: int = 0
    undelivered_good: int = 0
    stuck: int = 0

    @property
    def topic(self) -> str:
        return topic_name(self.line, self.fuzz.kind)

    async def publish(self, message: Fuzzed) -> Published:
        sent = await self.line.producer.send_and_wait(message.topic, message.value, key=message.key)
        return Published(message, sent.partition, sent.offset)

    async def good_request(
        self, recipients: Sequence[str], district: str, what: str = "a good send request"
    ) -> Published:
        self.good_requests += 1
        message_id = f"good-{uuid.uuid4().hex[:8]}-{self.good_requests}"
        document = send_request(
            message_id,
            list(recipients),
            district_id=district,
            body=f"[{message_id}] Field trip forms are due Friday.",
        )
        return await self.publish(
            Fuzzed(
                what,
                self.line.settings.kafka.send_requests_topic,
                orjson.dumps(document),
                document["conversation_id"].encode(),
                Expect.DELIVERED,
                message_id=document["message_id"],
                recipient_ids=frozenset(recipients),
            )
        )

    async def wait_processed(
        self, published: Sequence[Published], seconds: float = PROCESS_SECONDS
    ) -> list[Published]:
        """Waits until the service's group has committed past every message; returns those
        it has not got past when ``seconds`` are up."""
        group = self.line.settings.kafka.group_id
        deadline = time.monotonic() + seconds
        while True:
            try:
                async with asyncio.timeout(max(0.5, deadline - time.monotonic())):
                    committed = await self.admin.list_consumer_group_offsets(group)
            except TimeoutError:
                committed = {}
            behind = [
                p
                for p in published
                if (done := committed.get(TopicPartition(p.message.topic, p.partition))) is None
                or done.offset <= p.offset
            ]
            if not behind or time.monotonic() > deadline:
                return behind
            await asyncio.sleep(0.05)

    async def check(self, published: Published) -> str | None:
        """What is wrong with what became of one processed message, if anything. The output
        topics have been read to their ends (see run_group), so nothing is waited for."""
        message = published.message
        dead = self.dead_letter_of(published)
        if message.expect is Expect.REJECTED:
            if dead is None:
                return "was not dead-lettered"
            return dead_letter_problem(dead, published)
        if message.expect is Expect.HANDLED:
            if dead is not None:
                return dead_letter_problem(dead, published)
            if message.message_id is not None and not self.delivered(message):
                return "was neither dead-lettered nor delivered to every recipient"
            return None
        if dead is not None:
            headers = header_map(dead)
            return (
                f"is valid but was dead-lettered: {headers.get('x-notifier-error')!r} "
                f"{headers.get('x-notifier-detail')!r}"
            )
        if message.expect is Expect.DELIVERED and not self.delivered(message):
            return f"did not reach each of {sorted(message.recipient_ids)!r}"
        if message.stored is not None and not await message.stored(self.line):
            return "was not stored"
        return None

    def dead_letter_of(self, published: Published) -> ConsumerRecord[bytes, bytes] | None:
        source = (published.message.topic, published.partition, published.offset)
        return next((r for r in self.dead_letters.records if origin(r) == source), None)

    def delivered(self, message: Fuzzed) -> bool:
        """A final event for each recipient's app inbox (every recipient has one, known to
        the directory or not)."""
        wanted = {(person, "app") for person in message.recipient_ids}
        return wanted <= final_deliveries(self.events, message.message_id)

    def sentinel_delivered(self, published: Published) -> bool:
        return final_deliveries(self.events, published.message.message_id) >= SENTINEL_RECIPIENTS

    async def load_directory(self) -> None:
        await self.line.load_directory(DIRECTORY)
        if self.fuzz.kind == "districts":
            await load_fuzzed_district(self.line)

    async def skip(self, behind: Sequence[Published]) -> bool:
        """Stops the service, commits its group past ``behind``, and starts it again, on a
        fresh database with the directory loaded again; False when it does not get going
        again. (Stopped in the middle of a batch, the old service can leave a connection
        in a transaction behind in this process, and with it SQLite's lock.)"""
        await self.line.stop_service()
        kafka = self.line.settings.kafka
        past: dict[TopicPartition, int] = {}
        for item in behind:
            partition = TopicPartition(item.message.topic, item.partition)
            past[partition] = max(past.get(partition, 0), item.offset + 1)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka.bootstrap_servers,
            group_id=kafka.group_id,
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            consumer.assign(list(past))
            await consumer.commit(past)
        finally:
            await consumer.stop()
        url = await self.restarts.enter_async_context(
            fresh_database(self.tmp_path / f"restart-{self.stuck}", self.backend, "t_fuzz")
        )
        self.line.settings = self.line.settings.model_copy(
            update={"database": DatabaseSettings(url=url)}
        )
        await self.line.start_service()
        await self.load_directory()
        # Rejoining the group takes a few seconds: wait for it before timing the next group.
        warm_up = await self.good_request(["guardian-dennis"], "d-springfield")
        return not await self.wait_processed([warm_up], RESTART_SECONDS)

    async def run_group(self, messages: Sequence[Fuzzed]) -> bool:
        """Publishes the messages and the good requests after them, then checks each.
        False when the consumer got stuck too often to go on."""
        published = [await self.publish(message) for message in messages]
        if self.fuzz.kind == "districts":
            # A district with any valid settings gets its messages delivered: once it is
            # stored, each probe person is sent one (alone: the district may allow one).
            if behind := await self.wait_processed(published):
                return await self.got_stuck(behind)
            published += [
                await self.good_request(
                    [person],
                    message.district_id,
                    f"a good send request in the district of: {message.what} "
                    f"({message.field_value or 'as stored'})",
                )
                for message in messages
                if message.district_id is not None
                for person in PROBES
            ]
        sentinel = await self.good_request(["guardian-dennis", "staff-chen"], "d-springfield")
        if behind := await self.wait_processed([*published, sentinel]):
            return await self.got_stuck(behind)
        # Dead letters and delivery events are published before the batch is committed.
        await read_to_end(self.dead_letters)
        await read_to_end(self.events)
        for item in published:
            problem = await self.check(item)
            if problem is not None:
                self.problems.append(f"{item.message.describe()} {problem}")
        if not self.sentinel_delivered(sentinel):
            self.undelivered_good += 1
            self.problems.append(
                "a good request published after "
                + ", ".join(m.what for m in messages)
                + " was not delivered to every recipient"
            )
        return True

    async def got_stuck(self, behind: Sequence[Published]) -> bool:
        """Reports the messages the consumer did not get past, and gets it past them.
        False when it has got stuck too often to go on."""
        # A batch that fails is retried whole: what its innocent messages do (a dead letter,
        # deliveries, a stored profile) still shows; the suspects are those without it.
        await read_to_end(self.dead_letters)
        await read_to_end(self.events)
        stuck = "\n    ".join(
            [
                ("-> " if await self.suspect(item) else "   ") + item.message.describe()
                for item in behind
            ]
        )
        self.problems.append(
            f"the consumer got stuck: it did not get past these within {PROCESS_SECONDS:.0f} s "
            f"(-> did not even partly get what it should: a suspect):\n    {stuck}"
        )
        self.stuck += 1
        if self.stuck >= MAX_STUCK:
            return False
        if not await self.skip(behind):
            self.problems.append("the service did not get going again after a restart")
            return False
        return True

    async def suspect(self, published: Published) -> bool:
        message = published.message
        if self.dead_letter_of(published) is not None:
            return False
        if message.message_id is not None:
            finals = final_deliveries(self.events, message.message_id)
            started = {
                (event["recipient_id"], event["channel"])
                for event in self.events.events()
                if event["message_id"] == message.message_id
            }
            return not self.delivered(message) or bool(started - finals)
        if message.stored is not None:
            return not await message.stored(self.line)
        return True

    def duplicate_sends(self) -> list[str]:
        """Everyone is texted or emailed at most once per message (the contract's
        effectively-once), whatever went wrong on the way."""
        texts = Counter(
            (form["To"], tag.group(1))
            for form in (r.form for r in self.line.twilio.received if r.method == "POST")
            if (tag := BODY_TAG.search(form.get("Body", "")))
        )
        emails = Counter(
            (mail.body["custom_args"]["notifier_message_id"], address["email"])
            for mail in self.line.sendgrid.accepted
            for personalization in mail.body["personalizations"]
            for address in personalization["to"]
        )
        return [
            f"{phone} was texted {count} times for the request tagged {tag!r}"
            for (phone, tag), count in texts.items()
            if count > 1
        ] + [
            f"{address} was emailed {count} times for message {message!r}"
            for (message, address), count in emails.items()
            if count > 1
        ]


def origin(record: ConsumerRecord[bytes, bytes]) -> tuple[str, int, int] | None:
    headers = header_map(record)
    try:
        return (
            headers["x-notifier-source-topic"],
            int(headers["x-notifier-source-partition"]),
            int(headers["x-notifier-source-offset"]),
        )
    except (KeyError, ValueError):
        return None


def header_map(record: ConsumerRecord[bytes, bytes]) -> dict[str, str]:
    return {name: value.decode(errors="replace") for name, value in record.headers}


def dead_letter_problem(dead: ConsumerRecord[bytes, bytes], published: Published) -> str | None:
    headers = header_map(dead)
    message = published.message
    code = headers.get("x-notifier-error", "")
    if not ERROR_CODE.match(code):
        return f"was dead-lettered without a machine-readable reason: {code!r}"
    if not headers.get("x-notifier-detail", "").strip():
        return f"was dead-lettered ({code}) without x-notifier-detail"
    if (dead.value or b"") != (message.value or b""):
        return f"was dead-lettered ({code}) with other bytes: {preview(dead.value)}"
    if dead.key != message.key:
        return f"was dead-lettered ({code}) under another key: {preview(dead.key)}"
    return None


def final_deliveries(events: Topic, message_id: str | None) -> set[tuple[str, str]]:
    if message_id is None:
        return set()
    return {(e["recipient_id"], e["channel"]) for e in _final(events.events(), message_id)}


async def read_to_end(topic: Topic) -> None:
    """Reads the topic up to its end as of now."""
    partitions = list(topic.consumer.assignment())
    async with asyncio.timeout(OUTCOME_SECONDS):
        ends = await topic.consumer.end_offsets(partitions)
        while True:
            seen = {
                TopicPartition(record.topic, record.partition): record.offset
                for record in topic.records
            }
            if all(seen.get(p, -1) + 1 >= ends[p] for p in partitions):
                return
            batches = await topic.consumer.getmany(timeout_ms=50)
            for batch in batches.values():
                topic.records.extend(batch)


async def reader(topic: str, partitions: int) -> Topic:
    """A topic read from its beginning, answering within tens of milliseconds (the
    pipeline's readers wait up to half a second for each fetch)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka_bootstrap(),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=20,
    )
    await consumer.start()
    consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
    return Topic(topic, consumer)


def on_database(url: str) -> Callable[[Settings, FakeTwilio, FakeSendGrid], Settings]:
    def change(settings: Settings, twilio: FakeTwilio, sendgrid: FakeSendGrid) -> Settings:
        # A short graceful timeout: a stuck consumer is stopped (see Run.skip) without
        # waiting for the batch it retries.
        kafka = settings.kafka.model_copy(update={"graceful_timeout_seconds": GRACEFUL_SECONDS})
        return settings.model_copy(update={"database": DatabaseSettings(url=url), "kafka": kafka})

    return change


async def load_fuzzed_district(line: Pipeline) -> None:
    kafka = line.settings.kafka
    await line.publish(kafka.districts_topic, base_district(), FUZZ_DISTRICT)
    people = [
        recipient("fuzz-staff", "Kenji", "staff", district_id=FUZZ_DISTRICT, email="k@fuzz.org"),
        recipient(
            "fuzz-guardian", "Mai", "guardian", district_id=FUZZ_DISTRICT, phone="+15555550177"
        ),
    ]
    for person in people:
        await line.publish(kafka.recipients_topic, person, person["id"])
    assert line.container is not None
    store = line.container.store
    deadline = time.monotonic() + PROCESS_SECONDS
    while len(await store.directory.recipients(PROBES)) < len(
        PROBES
    ) or not await store.directory.district(FUZZ_DISTRICT):
        assert time.monotonic() < deadline, "the fuzzed district never reached the store"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", list(TOPICS))
async def test_bad_input_is_dead_lettered_and_never_stops_delivery(
    tmp_path: Path, kind: TopicKind, backend: Backend, fault_summary: FaultSummary
) -> None:
    fuzz = TOPICS[kind]
    drafts = sample(fuzz)
    run_id = uuid.uuid4().hex[:6]
    async with (
        AsyncExitStack() as restarts,
        fresh_database(tmp_path, backend, "t_fuzz") as url,
        running_pipeline(tmp_path, on_database(url)) as line,
    ):
        kafka = line.settings.kafka
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap())
        await admin.start()
        events = await reader(kafka.delivery_events_topic, kafka.partitions)
        dead_letters = await reader(kafka.dead_letter_topic, 1)
        try:
            run = Run(line, fuzz, admin, events, dead_letters, restarts, tmp_path, backend)
            await run.load_directory()
            topic = run.topic
            messages = [
                finish(draft, fuzz, topic, number, run_id) for number, draft in enumerate(drafts)
            ]
            alive = True
            async with asyncio.timeout(RUN_SECONDS):
                for start in range(0, len(messages), GROUP_SIZE):
                    alive = await run.run_group(messages[start : start + GROUP_SIZE])
                    if not alive:
                        break
            if alive:
                # (c) still consuming and delivering at the end, and the broker reachable.
                final = await run.good_request(["guardian-dennis", "staff-chen"], "d-springfield")
                if await run.wait_processed([final]):
                    run.problems.append("the consumer did not get to the final good request")
                await read_to_end(run.events)
                if not run.sentinel_delivered(final):
                    run.undelivered_good += 1
                    run.problems.append("the final good request was not delivered")
                assert line.container is not None
                assert await line.container.broker.ping(timeout=5.0), "the broker is unreachable"
            duplicates = run.duplicate_sends()
            run.problems += duplicates
            good_deliveries = sum(
                1
                for event in run.events.events()
                if event["status"] != "queued" and event["message_id"].startswith("good-")
            )
            fault_summary.record_fuzz(
                "fuzzed input (stream)",
                dead_lettered=len(run.dead_letters.records),
                good_deliveries=good_deliveries,
                lost=run.undelivered_good,
                duplicates=len(duplicates),
                problems=len(run.problems),
                note=f"{kind} on {backend}: {len(messages)} fuzzed, {run.stuck} stuck",
            )
        finally:
            await admin.close()
            await events.consumer.stop()
            await dead_letters.consumer.stop()

    assert not run.problems, (
        f"{len(run.problems)} problem(s) with {len(messages)} fuzzed {kind} messages "
        f"on {backend}:\n- " + "\n- ".join(run.problems)
    )

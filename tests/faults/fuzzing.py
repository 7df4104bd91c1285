"""What the two fuzz modules (test_fuzz_stream.py, test_fuzz_http.py) share: hostile values as
hypothesis strategies, a fixed sample of examples drawn ahead of a run, the hypothesis settings
that keep both reproducible and inside their time budget, and the two backends (each running
service gets a fresh database of one: tests/databases.py)."""

from __future__ import annotations

import os
from typing import Any, TypeVar

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.databases import Backend

T = TypeVar("T")
BACKENDS: tuple[Backend, ...] = ("sqlite", "postgresql")

REPRODUCIBLE = settings(
    # The same examples on every run and machine: a CI failure replays locally.
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=False,
    # The examples are deliberately large, slow to make and few.
    suppress_health_check=list(HealthCheck),
)
"""The base of every fuzz test's settings; each test sets its own ``max_examples``."""

SCALE = float(os.environ.get("NOTIFIER_FUZZ_SCALE", "1"))
"""Multiplies every fuzz test's number of examples: 1 keeps both modules within about two
minutes (CI); ``NOTIFIER_FUZZ_SCALE=10`` fuzzes ten times longer (other examples, same
seed)."""


def examples(count: int) -> int:
    return max(1, round(count * SCALE))


NASTY_STRINGS = (
    "\x00",
    "a\x00b",
    "\r\n",
    "\n\n",
    "\t",
    "\x1b[2J",
    "\x7f",
    "\x85",
    "\xa0",
    "\u2028",
    "\u200b",
    "\u202e",
    "\ufeff",
    "\ufffd",
    "\U0010ffff",
    "e\u0301",
    "🎉",
    "👨\u200d👩\u200d👧\u200d👦",
    "🇺🇸",
    "ﷺ",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "Ｆｕｌｌ",
    "Ω≈ç√",
    "مرحبا",
    "שָׁלוֹם",
    "你好",
    "{}[]~^|€\\",
    "%00",
    "%s%n%x",
    "{0}{name}",
    "${jndi:ldap://x}",
    "<script>alert(1)</script>",
    "'; DROP TABLE recipients; --",
    '"',
    "\\",
    "../../etc/passwd",
    "NaN",
    "null",
    "-0",
    "1e309",
    "9" * 40,
    "+15555550123",
    "a@b.co",
    "@",
    "STOP",
)
"""Characters and strings that have broken parsers, databases, renderers and logs before."""


def hostile_text(*, min_size: int = 0, max_size: int = 60) -> st.SearchStrategy[str]:
    """Any text, leaning on NASTY_STRINGS: control characters, CR/LF, NUL, bidi marks,
    emoji, combining marks, injection attempts."""
    nasty = st.sampled_from(NASTY_STRINGS)
    mixed = st.lists(st.one_of(nasty, st.text(max_size=4)), min_size=1, max_size=8).map("".join)
    return (
        # The likeliest trouble first: hypothesis favours a strategy's first branches.
        st.one_of(nasty, mixed, st.text(min_size=min_size, max_size=max_size))
        .map(lambda text: text[:max_size])
        .filter(lambda text: len(text) >= min_size)
    )


def huge_text(longer_than: int, *, at_most: int = 200_000) -> st.SearchStrategy[str]:
    """Text of more than ``longer_than`` characters, none of them whitespace at either end
    (so that stripping cannot bring it back under a limit)."""
    units = st.sampled_from(["x", "é", "🎉", "a b", "\x00", "ﷺ", "\r\nz", "表"])
    return st.tuples(units, st.integers(longer_than + 1, max(longer_than * 3, 64))).map(
        lambda unit_count: (unit_count[0] * unit_count[1])[:at_most]
    )


def json_scalars() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**63), max_value=2**64 - 1),
        st.sampled_from([0, -1, 2**31, 2**53 + 1, 2**62, 2**63 - 1, -(2**63)]),
        st.floats(allow_nan=False, allow_infinity=False),
        hostile_text(),
    )


def json_values(*, max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """Any JSON value (finite numbers only), nested."""
    return st.recursive(
        json_scalars(),
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(hostile_text(max_size=12), children, max_size=4),
        ),
        max_leaves=max_leaves,
    )


def draw_sample(strategy: st.SearchStrategy[T], count: int) -> list[T]:
    """``count`` examples of ``strategy`` (times SCALE; fewer if it has fewer), the same on
    every run.

    Hypothesis generates them as it would for a test (simplest first, then random, with its
    bias towards boundaries and repeats) from a seed derived from this function, so a run is
    reproducible; nothing fails inside, so nothing is shrunk or stored.
    """
    drawn: list[T] = []

    @settings(REPRODUCIBLE, max_examples=examples(count), phases=[Phase.generate])
    @given(strategy)
    def collect(example: T) -> None:
        drawn.append(example)

    collect()
    return drawn


def preview(value: bytes | str | None, limit: int = 240) -> str:
    """A failure message's view of an input: its start, and its size when cut."""
    if value is None:
        return "None"
    shown = repr(value[:limit])
    return shown if len(value) <= limit else f"{shown}… ({len(value)} in all)"

"""SMS length as carriers count and bill it: the encoding, the segments, and shortening a
text to a district's segment cap.

A text is sent in GSM-7 when every character is in the GSM 03.38 default alphabet or its
extension table, otherwise in UCS-2; one character outside the alphabet (a curly quote, an
"á", an emoji) switches the whole text and cuts a segment from 160 to 70 characters.

Alphabets: 3GPP TS 23.038 §6.2.1 "GSM 7 bit Default Alphabet" and §6.2.1.1 "GSM 7 bit
default alphabet extension table", https://www.3gpp.org/DynaReport/23038.htm
Segment sizes: one SMS carries 140 octets (160 septets, 70 UCS-2 units). A multipart
("concatenated") SMS gives 6 octets of each part to the User Data Header (3GPP TS 23.040
§9.2.3.24.1, https://www.3gpp.org/DynaReport/23040.htm), leaving 153 septets or 67 units.
Senders split on whole characters (each part must decode on its own), so an extension
character's escape never ends a part and a UTF-16 surrogate pair never straddles two.
"""

from __future__ import annotations

import unicodedata
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from itertools import accumulate
from types import MappingProxyType


class SmsEncoding(StrEnum):
    GSM_7 = "gsm_7"
    UCS_2 = "ucs_2"


# --- GSM 03.38 (3GPP TS 23.038 §6.2.1) --------------------------------------------------------

_ESCAPE = "\x1b"
"""Code 0x1B: the escape to the extension table, not a character of its own."""

GSM_7_DEFAULT_ALPHABET = (
    # One string per row of 16 codes: 0x00-0x0F, 0x10-0x1F, ... 0x70-0x7F.
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
"""The default alphabet in code order (index = septet value); one septet each. Code 0x09 is
the capital "Ç" (the lowercase "ç" is not in the alphabet), and "Δ", "Ω" are Greek capitals."""

GSM_7_EXTENSION_TABLE: Mapping[str, int] = MappingProxyType(
    {
        "\f": 0x0A,  # page break
        "^": 0x14,
        "{": 0x28,
        "}": 0x29,
        "\\": 0x2F,
        "[": 0x3C,
        "~": 0x3D,
        "]": 0x3E,
        "|": 0x40,
        "€": 0x65,
    }
)
"""Characters sent as the escape 0x1B followed by this code: two septets each."""

_GSM_7_BASIC = frozenset(GSM_7_DEFAULT_ALPHABET) - {_ESCAPE}
_GSM_7_ALL = _GSM_7_BASIC | frozenset(GSM_7_EXTENSION_TABLE)

GSM_7_SINGLE = 160
GSM_7_MULTIPART = 153
UCS_2_SINGLE = 70
UCS_2_MULTIPART = 67

_LIMITS: Mapping[SmsEncoding, tuple[int, int]] = MappingProxyType(
    {
        SmsEncoding.GSM_7: (GSM_7_SINGLE, GSM_7_MULTIPART),
        SmsEncoding.UCS_2: (UCS_2_SINGLE, UCS_2_MULTIPART),
    }
)


@dataclass(frozen=True)
class SmsSegments:
    """How a text goes out. ``septets_or_units`` is its length in septets (GSM-7, extension
    characters counting two) or UTF-16 code units (UCS-2, emoji and other characters beyond
    the Basic Multilingual Plane counting two); ``per_segment`` is how much of that each
    segment carries, so ``count == len(per_segment)``.

    An empty text is one segment, ``per_segment == (0,)``: a carrier bills a sent SMS as
    one part whatever its length.
    """

    encoding: SmsEncoding
    septets_or_units: int
    count: int
    per_segment: tuple[int, ...]


def encoding_of(text: str) -> SmsEncoding:
    return SmsEncoding.GSM_7 if _GSM_7_ALL.issuperset(text) else SmsEncoding.UCS_2


def segments(text: str) -> SmsSegments:
    encoding = encoding_of(text)
    per_segment = _pack(_weights(text, encoding), *_LIMITS[encoding])
    return SmsSegments(encoding, sum(per_segment), len(per_segment), per_segment)


def _weights(text: str, encoding: SmsEncoding) -> list[int]:
    """Each character's size: septets in GSM-7, UTF-16 code units in UCS-2."""
    if encoding is SmsEncoding.GSM_7:
        return [2 if character in GSM_7_EXTENSION_TABLE else 1 for character in text]
    return [2 if ord(character) > 0xFFFF else 1 for character in text]


def _pack(weights: Sequence[int], single: int, multipart: int) -> tuple[int, ...]:
    """Fill segments character by character, as a sender splits a concatenated SMS: a
    character that does not fit whole in what is left of a segment starts the next one."""
    total = sum(weights)
    if total <= single:
        return (total,)
    ends = list(accumulate(weights))
    sizes: list[int] = []
    sent = 0
    while sent < total:
        # The last character whose end still fits in this segment.
        segment_end = ends[bisect_right(ends, sent + multipart) - 1]
        sizes.append(segment_end - sent)
        sent = segment_end
    return tuple(sizes)


# --- Look-alike characters ----------------------------------------------------------------------

LOOK_ALIKES: Mapping[str, str] = MappingProxyType(
    {
        # Quotation marks and apostrophes. Guillemets are quotation marks too (French).
        "‘": "'",
        "’": "'",
        "‚": "'",
        "‛": "'",
        "′": "'",
        "´": "'",
        "`": "'",
        "“": '"',
        "”": '"',
        "„": '"',
        "‟": '"',
        "″": '"',
        "«": '"',
        "»": '"',
        # Dashes, hyphens, minus.
        "‐": "-",
        "‑": "-",
        "‒": "-",
        "–": "-",
        "—": "-",
        "―": "-",
        "−": "-",
        # Bullets.
        "•": "-",
        "‣": "-",
        "⁃": "-",
        "◦": "-",
        "…": "...",
        # Spaces: no-break, the typographic spaces U+2000-U+200A, narrow no-break (French
        # punctuation), medium mathematical, ideographic; and tab.
        "\u00a0": " ",
        **{chr(code): " " for code in range(0x2000, 0x200B)},
        "\u202f": " ",
        "\u205f": " ",
        "\u3000": " ",
        "\t": " ",
        # Line and paragraph separators.
        "\u2028": "\n",
        "\u2029": "\n",
        # Invisible: zero-width space, non-joiner, joiner, word joiner, byte order mark,
        # soft hyphen.
        "\u200b": "",
        "\u200c": "",
        "\u200d": "",
        "\u2060": "",
        "\ufeff": "",
        "\u00ad": "",
    }
)
"""Typographic characters outside GSM-7 and the GSM-7 text that reads the same. Only
punctuation, spaces and invisible characters: never a letter, of any script."""

_LOOK_ALIKE_TRANSLATION = str.maketrans(dict(LOOK_ALIKES))


def replace_look_alikes(text: str) -> str:
    """``text`` with every ``LOOK_ALIKES`` character replaced. Zero-width joiners shape
    Persian and Indic words and join emoji, so ``fit_sms`` keeps the replacement only when
    it makes the whole text GSM-7 (and such a text has neither)."""
    return text.translate(_LOOK_ALIKE_TRANSLATION)


# --- Fitting a segment cap -----------------------------------------------------------------------

WORD_LOOKBACK = 30
"""How far back from the longest fitting cut a word boundary is looked for. Further back
than a long word, the text is one long token or in a script written without spaces, and a
hard cut keeps more of it."""

CLAUSE_ENDINGS = frozenset("。、，；：！？．｡､")
"""Chinese and Japanese punctuation after which a text can be cut: those scripts put no
space between words."""

_CLUSTER_CONTINUERS = frozenset(
    {"\u200d", "\ufe0e", "\ufe0f", *(chr(code) for code in range(0x1F3FB, 0x1F400))}
)
"""Characters that belong to the character before them: zero-width joiner, variation
selectors, emoji skin tones (combining marks are found by their Unicode category)."""


@dataclass(frozen=True)
class FittedSms:
    text: str
    segments: SmsSegments
    shortened: bool


def fit_sms(
    text: str,
    *,
    max_segments: int,
    read_more: str,
    replace_look_alikes_first: bool = True,
) -> FittedSms:
    """``text`` within ``max_segments``: unchanged when it fits, otherwise cut at a word
    boundary and ended with an ellipsis and ``read_more`` (localized by the caller, e.g.
    "Read more: https://…").

    With ``replace_look_alikes_first``, look-alike characters are replaced where that makes
    the text GSM-7; a text that stays UCS-2 keeps its own typography. A shortened text
    ends with "..." when it is GSM-7 and with "…" when it is UCS-2 anyway; of the two it
    is the one that keeps more of the message (the GSM-7 one on a tie). When not even
    ``read_more`` fits, the text ends with the ellipsis alone.
    """
    if max_segments < 1:
        raise ValueError(f"max_segments must be at least 1, not {max_segments}")
    body = _as_gsm_7(text) if replace_look_alikes_first else text
    counted = segments(body)
    if counted.count <= max_segments:
        return FittedSms(body, counted, shortened=False)

    # Only the GSM-7 beginning of the text is kept in a GSM-7 result, so the replacement
    # counts if it makes that beginning longer, whatever follows.
    gsm_source = replace_look_alikes(text) if replace_look_alikes_first else text
    gsm_read_more = _as_gsm_7(read_more) if replace_look_alikes_first else read_more
    for with_read_more in (True, False):
        candidates = [
            _shorten(text, read_more if with_read_more else "", SmsEncoding.UCS_2, max_segments)
        ]
        if encoding_of(gsm_read_more) is SmsEncoding.GSM_7:
            candidates.append(
                _shorten(
                    gsm_source,
                    gsm_read_more if with_read_more else "",
                    SmsEncoding.GSM_7,
                    max_segments,
                )
            )
        fitting = [candidate for candidate in candidates if candidate is not None]
        if fitting:
            # The longest cut; reversed, so that a tie goes to the GSM-7 one.
            cut, ellipsis, ending = max(reversed(fitting), key=lambda fit: len(fit[0]))
            result = _compose(cut, ellipsis, ending)
            return FittedSms(result, segments(result), shortened=True)
    raise AssertionError("unreachable: a character and an ellipsis fit in one UCS-2 segment")


def _as_gsm_7(text: str) -> str:
    replaced = replace_look_alikes(text)
    return replaced if encoding_of(replaced) is SmsEncoding.GSM_7 else text


def _shorten(
    source: str, read_more: str, encoding: SmsEncoding, max_segments: int
) -> tuple[str, str, str] | None:
    """The longest cut of ``source`` that, composed with the ellipsis of ``encoding`` and
    ``read_more``, fits in ``max_segments`` segments of that encoding; None if none does.

    Within one encoding the segment count never falls as the cut grows, so a binary search
    finds the longest cut that fits.
    """
    ellipsis = "..." if encoding is SmsEncoding.GSM_7 else "…"
    suffix = ellipsis + (" " + read_more if read_more else "")
    usable = len(source)
    if encoding is SmsEncoding.GSM_7:
        # A GSM-7 result keeps the source up to its first character outside GSM-7, and
        # not a base letter whose combining accent is that character.
        usable = next((i for i, c in enumerate(source) if c not in _GSM_7_ALL), usable)
        while 0 < usable < len(source) and _continues_previous(source, usable):
            usable -= 1
    text_weights = _weights(source[:usable], encoding)
    suffix_weights = _weights(suffix, encoding)
    limits = _LIMITS[encoding]

    def fits(length: int) -> bool:
        return len(_pack(text_weights[:length] + suffix_weights, *limits)) <= max_segments

    if not fits(0):
        return None
    low, high = 0, usable  # fits(low) holds; find the largest such length
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return _cut(source, low), ellipsis, read_more


def _cut(source: str, length: int) -> str:
    """``source[:length]`` shortened to its last word boundary near the end, or, without
    one, to the last character boundary that keeps combined characters whole."""
    for end in range(length, max(0, length - WORD_LOOKBACK) - 1, -1):
        if end < len(source) and source[end].isspace():
            cut = source[:end].rstrip()
        elif end > 0 and source[end - 1] in CLAUSE_ENDINGS:
            cut = source[:end]
        else:
            continue
        if cut:
            return cut
    end = length
    while 0 < end < len(source) and _continues_previous(source, end):
        end -= 1
    return source[: end or length].rstrip()


def _continues_previous(source: str, index: int) -> bool:
    character = source[index]
    return (
        unicodedata.category(character) in {"Mn", "Mc", "Me"}
        or character in _CLUSTER_CONTINUERS
        or source[index - 1] == "\u200d"
    )


def _compose(cut: str, ellipsis: str, read_more: str) -> str:
    if not cut:
        return read_more or ellipsis
    return cut + ellipsis + (" " + read_more if read_more else "")

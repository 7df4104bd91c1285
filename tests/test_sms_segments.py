"""SMS encoding and segments as carriers count them, and shortening to a district's cap."""

from __future__ import annotations

import gettext
from collections.abc import Callable

import pytest

from notifier.domain.rendering import sms_label
from notifier.domain.sms import (
    LOOK_ALIKES,
    SmsEncoding,
    encoding_of,
    fit_sms,
    replace_look_alikes,
    segments,
)

GSM_7 = SmsEncoding.GSM_7
UCS_2 = SmsEncoding.UCS_2

READ_MORE = "Read more: https://notifier.example/m/8f3a"

VIETNAMESE = "Ngày mai trường đóng cửa vì bão."
CHINESE = "明天学校放假，请家长注意安全。"

# Segment counting


@pytest.mark.parametrize(
    ("text", "encoding", "per_segment"),
    [
        pytest.param("", GSM_7, (0,), id="empty text is one segment, as billed"),
        pytest.param("a" * 160, GSM_7, (160,), id="ascii 160 fits one segment"),
        pytest.param("a" * 161, GSM_7, (153, 8), id="ascii 161 splits 153+8"),
        pytest.param("a" * 306, GSM_7, (153, 153), id="ascii 306 is two full parts"),
        pytest.param("a" * 307, GSM_7, (153, 153, 1), id="ascii 307 needs a third part"),
        pytest.param("Line one\r\nline two", GSM_7, (18,), id="CR and LF are GSM-7"),
        pytest.param("€" * 80, GSM_7, (160,), id="80 euro signs are 160 septets"),
        pytest.param("€" * 81, GSM_7, (152, 10), id="81 euro signs split, none cut"),
        pytest.param("{" + "a" * 157 + "^", GSM_7, (153, 8), id="braces and caret count double"),
        pytest.param(
            "[~]|\\" + "a" * 151, GSM_7, (153, 8), id="brackets tilde bar backslash count double"
        ),
        pytest.param(
            "a" * 151 + "€" + "a" * 153, GSM_7, (153, 153), id="escape ending exactly at 153"
        ),
        pytest.param(
            "a" * 152 + "€" + "a" * 152,
            GSM_7,
            (152, 153, 1),
            id="escape that would straddle 153 moves to the next part",
        ),
        pytest.param("ΔΦΓΛΩΠΨΣΘΞ", GSM_7, (10,), id="greek capitals of the alphabet are GSM-7"),
        pytest.param("Ça coûte", UCS_2, (8,), id="capital C cedilla is GSM-7 but u circumflex not"),
        pytest.param("Ça va", GSM_7, (5,), id="capital C cedilla is GSM-7"),
        pytest.param("Lição", UCS_2, (5,), id="small c cedilla is not GSM-7"),
        pytest.param("😀" + "a" * 68, UCS_2, (70,), id="one emoji, 70 units fit one segment"),
        pytest.param("😀" + "a" * 69, UCS_2, (67, 4), id="one emoji, 71 units split 67+4"),
        pytest.param("😀" * 35, UCS_2, (70,), id="35 emoji are 70 units"),
        pytest.param("😀" * 36, UCS_2, (66, 6), id="36 emoji split without halving one"),
        pytest.param(
            "a" * 66 + "😀" + "a" * 10,
            UCS_2,
            (66, 12),
            id="emoji that would straddle 67 moves to the next part",
        ),
        pytest.param(VIETNAMESE, UCS_2, (32,), id="vietnamese is UCS-2"),
        pytest.param(VIETNAMESE * 3, UCS_2, (67, 29), id="vietnamese 96 characters is 2 parts"),
        pytest.param(CHINESE, UCS_2, (15,), id="chinese is UCS-2"),
        pytest.param(CHINESE * 5, UCS_2, (67, 8), id="chinese 75 characters is 2 parts"),
        pytest.param("Mañana el pingüino y el café", GSM_7, (28,), id="spanish n-tilde e-acute ok"),
        pytest.param("Reunión el miércoles", UCS_2, (20,), id="spanish o-acute forces UCS-2"),
        pytest.param("Está aquí", UCS_2, (9,), id="spanish a-acute i-acute force UCS-2"),
        pytest.param("Los niños ya están", UCS_2, (18,), id="one a-acute decides for all"),
        pytest.param("We’re here", UCS_2, (10,), id="a curly apostrophe forces UCS-2"),
        pytest.param("Use `code`", UCS_2, (10,), id="backtick is not GSM-7"),
        pytest.param("a\tb", UCS_2, (3,), id="tab is not GSM-7"),
    ],
)
def test_segments_are_counted_as_carriers_count_them(
    text: str, encoding: SmsEncoding, per_segment: tuple[int, ...]
) -> None:
    counted = segments(text)

    assert encoding_of(text) is encoding
    assert counted.encoding is encoding
    assert counted.per_segment == per_segment
    assert counted.count == len(per_segment)
    assert counted.septets_or_units == sum(per_segment)


def test_escape_character_counts_as_one_when_ucs_2_is_forced_anyway() -> None:
    counted = segments("€€ 😀")

    assert (counted.encoding, counted.septets_or_units) == (UCS_2, 5)


# The label


@pytest.mark.parametrize(
    ("body", "segments_alone", "segments_labelled"),
    [
        pytest.param("a" * 150, 1, 2, id="gsm-7 150 plus label crosses 160"),
        pytest.param("a" * 148, 1, 1, id="gsm-7 148 plus label is exactly 160"),
        pytest.param(VIETNAMESE + "x" * 28, 1, 2, id="ucs-2 60 plus label crosses 70"),
        pytest.param("a" * 300, 2, 3, id="gsm-7 300 plus label crosses 306"),
    ],
)
def test_label_is_counted_and_can_push_a_text_over_a_boundary(
    body: str, segments_alone: int, segments_labelled: int
) -> None:
    label = sms_label(gettext.NullTranslations(), "Dennis")

    assert label == "For Dennis: "
    assert segments(body).count == segments_alone
    assert segments(label + body).count == segments_labelled


# Look-alike characters

SMART_QUOTE_TEXT = (
    "We’re meeting at the library on Friday at 3pm. Bring a pen and the signed field "
    "trip form, plus water and a packed lunch for the whole day. Thank you!"
)


def test_one_smart_quote_triples_the_cost_and_replacing_it_saves_two_segments() -> None:
    assert len(SMART_QUOTE_TEXT) == 150
    assert SMART_QUOTE_TEXT.count("’") == 1
    before = segments(SMART_QUOTE_TEXT)

    after = segments(replace_look_alikes(SMART_QUOTE_TEXT))

    assert (before.encoding, before.count, before.per_segment) == (UCS_2, 3, (67, 67, 16))
    assert (after.encoding, after.count) == (GSM_7, 1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("‘Hi’ ‚low‛", "'Hi' 'low'", id="single curly quotes"),
        pytest.param("“Hi” „low‟", '"Hi" "low"', id="double curly quotes"),
        pytest.param("«Bonjour»", '"Bonjour"', id="guillemets"),
        pytest.param("café´s 5′ 6″", "café's 5' 6\"", id="acute accent and primes"),
        pytest.param("9–11 — today ― ok", "9-11 - today - ok", id="en em and bar dashes"),
        pytest.param("non‑breaking‐hyphen −3", "non-breaking-hyphen -3", id="hyphens and minus"),
        pytest.param("Wait…", "Wait...", id="ellipsis"),
        pytest.param("• one\n◦ two", "- one\n- two", id="bullets"),
        pytest.param("10\u00a0am", "10 am", id="no-break space"),
        pytest.param("Merci\u202f!", "Merci !", id="narrow no-break space"),
        pytest.param(
            "".join(chr(code) for code in range(0x2000, 0x200B)),
            " " * 11,
            id="typographic spaces U+2000 to U+200A",
        ),
        pytest.param("a\u205fb\u3000c\td", "a b c d", id="math ideographic and tab spaces"),
        pytest.param("a\u200bb\u200cc\u200dd\ufeffe", "abcde", id="zero-width removed"),
        pytest.param("hy\u00adphen\u2060ated", "hyphenated", id="soft hyphen word joiner removed"),
        pytest.param("one\u2028two\u2029three", "one\ntwo\nthree", id="line separators"),
    ],
)
def test_look_alikes_become_their_gsm_7_equivalents(text: str, expected: str) -> None:
    assert replace_look_alikes(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(VIETNAMESE, id="vietnamese"),
        pytest.param(CHINESE, id="chinese"),
        pytest.param("غدًا عطلة مدرسية", id="arabic"),
        pytest.param("Завтра школа закрыта", id="russian"),
        pytest.param("Reunión el miércoles", id="spanish accents"),
        pytest.param("αβγ ΑΒΓ", id="greek"),
        pytest.param("내일 휴교합니다", id="korean"),
        pytest.param("Mañana ñ ü é à ß Ø", id="gsm-7 letters"),
    ],
)
def test_look_alike_replacement_never_changes_letters(text: str) -> None:
    assert replace_look_alikes(text) == text


@pytest.mark.parametrize(
    ("character", "replacement"),
    [pytest.param(c, r, id=f"U+{ord(c):04X}") for c, r in LOOK_ALIKES.items()],
)
def test_every_look_alike_is_replaced_by_gsm_7(character: str, replacement: str) -> None:
    assert encoding_of(character) is UCS_2
    assert encoding_of(replacement) is GSM_7


# Fitting a segment cap


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("Field trip forms are due Friday.", id="short gsm-7"),
        pytest.param(VIETNAMESE, id="short vietnamese"),
        pytest.param("a" * 459, id="gsm-7 exactly 3 full parts"),
        pytest.param("ạ" * 201, id="ucs-2 exactly 3 full parts"),
        pytest.param("", id="empty"),
    ],
)
def test_text_within_the_cap_is_left_untouched(text: str) -> None:
    fitted = fit_sms(text, max_segments=3, read_more=READ_MORE)

    assert fitted.text == text
    assert not fitted.shortened
    assert fitted.segments == segments(text)


def test_look_alikes_are_replaced_by_default_when_that_makes_the_text_gsm_7() -> None:
    fitted = fit_sms(SMART_QUOTE_TEXT, max_segments=3, read_more=READ_MORE)

    assert fitted.text == SMART_QUOTE_TEXT.replace("’", "'")
    assert (fitted.segments.encoding, fitted.segments.count) == (GSM_7, 1)
    assert not fitted.shortened


def test_look_alikes_are_kept_when_replacement_is_turned_off() -> None:
    fitted = fit_sms(
        SMART_QUOTE_TEXT, max_segments=3, read_more=READ_MORE, replace_look_alikes_first=False
    )

    assert fitted.text == SMART_QUOTE_TEXT
    assert (fitted.segments.encoding, fitted.segments.count) == (UCS_2, 3)


def test_text_that_stays_ucs_2_keeps_its_typography() -> None:
    text = "明天是“开放日”……欢迎家长参加。"

    assert fit_sms(text, max_segments=3, read_more=READ_MORE).text == text


def test_replacing_look_alikes_lets_a_capped_text_keep_more_words() -> None:
    text = SMART_QUOTE_TEXT * 3

    replaced = fit_sms(text, max_segments=2, read_more=READ_MORE)
    kept = fit_sms(text, max_segments=2, read_more=READ_MORE, replace_look_alikes_first=False)

    assert replaced.segments.encoding is GSM_7
    assert kept.segments.encoding is UCS_2
    assert len(replaced.text) > 2 * len(kept.text)


def _gsm_7_words(length: int) -> str:
    sentence = "Field trip forms are due Friday; bring {lunch} & water [no glass] ~ 5€. "
    return (sentence * (length // len(sentence) + 1))[:length]


def _ucs_2_words(length: int) -> str:
    sentence = "Phiếu đi dã ngoại nộp trước thứ Sáu. Mang theo bữa trưa 🍎 và nước uống. "
    return (sentence * (length // len(sentence) + 1))[:length]


@pytest.mark.parametrize("max_segments", [1, 2, 3])
@pytest.mark.parametrize(
    ("make_text", "encoding", "ellipsis"),
    [
        pytest.param(_gsm_7_words, GSM_7, "...", id="gsm-7 with escapes"),
        pytest.param(_ucs_2_words, UCS_2, "…", id="vietnamese with emoji"),
    ],
)
def test_shortened_text_fits_the_cap_at_every_length(
    make_text: Callable[[int], str], encoding: SmsEncoding, ellipsis: str, max_segments: int
) -> None:
    ending = f"{ellipsis} {READ_MORE}"
    for length in range(1, 2001):
        text = make_text(length)
        fitted = fit_sms(text, max_segments=max_segments, read_more=READ_MORE)
        where = f"length {length}: {fitted.text!r}"

        assert fitted.segments == segments(fitted.text), where
        assert fitted.segments.count <= max_segments, where
        if segments(text).count <= max_segments:
            assert (fitted.text, fitted.shortened) == (text, False), where
            continue
        assert fitted.shortened, where
        assert fitted.segments.encoding is encoding, where
        assert fitted.text.endswith(ending), where
        cut = fitted.text.removesuffix(ending)
        assert cut, where
        assert text.startswith(cut), where
        assert text[len(cut)].isspace(), f"not cut at a word boundary: {where}"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("a" * 1000, id="ascii"),
        pytest.param("€" * 1000, id="gsm-7 escapes"),
        pytest.param("😀" * 1000, id="emoji surrogate pairs"),
        pytest.param("明" * 1000, id="chinese"),
    ],
)
@pytest.mark.parametrize("max_segments", [1, 3])
def test_text_without_word_boundaries_is_cut_hard_but_whole(text: str, max_segments: int) -> None:
    fitted = fit_sms(text, max_segments=max_segments, read_more=READ_MORE)

    ellipsis = "..." if fitted.segments.encoding is GSM_7 else "…"
    cut = fitted.text.removesuffix(f"{ellipsis} {READ_MORE}")
    assert cut
    assert cut == text[: len(cut)]
    assert fitted.segments.count <= max_segments
    # The longest cut that fits: one more character would not.
    one_more = text[: len(cut) + 1] + f"{ellipsis} {READ_MORE}"
    assert segments(one_more).count > max_segments


def test_chinese_is_cut_after_a_full_stop() -> None:
    fitted = fit_sms("明天学校放假。" * 40, max_segments=2, read_more=READ_MORE)

    assert fitted.text.endswith(f"。… {READ_MORE}")
    assert fitted.segments.count <= 2


def test_decomposed_accent_stays_with_its_letter_in_a_hard_cut() -> None:
    text = "e\u0301" * 400  # "é" written as e + combining acute accent

    fitted = fit_sms(text, max_segments=1, read_more=READ_MORE)

    cut = fitted.text.removesuffix(f"… {READ_MORE}")
    assert cut.endswith("\u0301")
    assert fitted.segments.count == 1


def test_gsm_7_beginning_stays_gsm_7_when_the_emoji_is_in_the_part_cut_off() -> None:
    text = "See you at the gate. " * 30 + "🎉"

    fitted = fit_sms(text, max_segments=2, read_more=READ_MORE)

    assert fitted.segments.encoding is GSM_7
    assert fitted.text.endswith(f"... {READ_MORE}")
    assert fitted.segments.count == 2


def test_localized_read_more_outside_gsm_7_makes_the_text_ucs_2() -> None:
    read_more = "Leer más: https://notifier.example/m/8f3a"

    fitted = fit_sms("Mañana hay excursión al museo. " * 20, max_segments=3, read_more=read_more)

    assert fitted.segments.encoding is UCS_2
    assert fitted.text.endswith(f"… {read_more}")
    assert fitted.segments.count <= 3


def test_look_alikes_in_read_more_are_replaced_too() -> None:
    read_more = "Lire la suite\u00a0: https://notifier.example/m/8f3a"

    fitted = fit_sms("La sortie a lieu demain matin. " * 20, max_segments=2, read_more=read_more)

    assert fitted.segments.encoding is GSM_7
    assert fitted.text.endswith("... Lire la suite : https://notifier.example/m/8f3a")


def test_read_more_too_long_for_the_cap_leaves_only_the_ellipsis() -> None:
    read_more = "Read more: https://notifier.example/m/" + "x" * 200

    fitted = fit_sms("Field trip forms are due Friday. " * 20, max_segments=1, read_more=read_more)

    assert fitted.text.endswith("due...")
    assert "Read more" not in fitted.text
    assert fitted.segments.count == 1
    assert fitted.shortened


@pytest.mark.parametrize("max_segments", [0, -1])
def test_cap_below_one_segment_is_rejected(max_segments: int) -> None:
    with pytest.raises(ValueError, match="max_segments"):
        fit_sms("Hi", max_segments=max_segments, read_more=READ_MORE)


def test_cut_before_a_non_gsm_7_space_is_still_a_word_boundary() -> None:
    text = "See you at the gate. " * 7 + "Bye\u00a0🎉"

    fitted = fit_sms(text, max_segments=1, read_more="", replace_look_alikes_first=False)

    assert fitted.text == "See you at the gate. " * 7 + "Bye..."
    assert fitted.segments.encoding is GSM_7

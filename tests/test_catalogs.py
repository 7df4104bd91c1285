"""The shipped gettext catalogs: complete, placeholder-exact, and in step with the code.

Fix a failure here with ``make catalogs`` (after adding or rewording a ``wording.gettext``
call) and by translating what it added to each src/notifier/locale/<lang>/.../notifier.po.
"""

from __future__ import annotations

import gettext
import string
from collections import Counter
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

import notifier
from notifier.adapters.catalogs import DOMAIN, GettextCatalogs, locale_dir
from notifier.domain.model import Attachment
from notifier.domain.rendering import Wording, email_subject, render_email, render_sms, sms_label
from notifier.domain.resolution import MessageText
from tests.builders import BODY, district, send_request

# The catalog directory (a Babel locale id) -> the language tag districts write.
SHIPPED = {
    "es": "es",
    "vi": "vi",
    "zh_Hans": "zh-Hans",
    "zh_Hant": "zh-Hant",
    "ar": "ar",
    "ht": "ht",
    "pt": "pt",
    "ru": "ru",
    "so": "so",
    "fr": "fr",
    "ko": "ko",
    "tl": "tl",
    "uk": "uk",
}
LANGUAGES = list(SHIPPED)
TAGS = list(SHIPPED.values())

# Latin-script languages whose SMS wording avoids characters outside GSM-7 (e.g. Spanish
# "á"), so that an untranslated English body with the localized note stays one GSM-7 text
# instead of a UCS-2 one with less than half the room per segment.
GSM7_WORDING = ["es", "fr", "pt", "ht", "so", "tl"]
GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = "\f^{}\\[~]|€"

ATTACHMENT_URL = "https://files.example/f/9"
RESUME_LINK = "https://notifier.example/r/abc123"
CONVERSATION = "Field trip"


@cache
def template() -> Catalog:
    with (locale_dir() / f"{DOMAIN}.pot").open("rb") as source:
        return read_po(source, domain=DOMAIN)


@cache
def catalog(language: str) -> Catalog:
    with (locale_dir() / language / "LC_MESSAGES" / f"{DOMAIN}.po").open("rb") as source:
        return read_po(source, locale=language, domain=DOMAIN)


def message_ids(po: Catalog) -> set[str]:
    return {message.id for message in po if message.id and isinstance(message.id, str)}


def translations(language: str) -> dict[str, str]:
    po = catalog(language)
    return {msgid: str(po[msgid].string) for msgid in sorted(message_ids(template()))}


def placeholders(text: str) -> Counter[tuple[str, str | None, str | None]]:
    """Each replacement field as str.format sees it: name, conversion and format spec."""
    return Counter(
        (name, conversion, spec)
        for _literal, name, spec, conversion in string.Formatter().parse(text)
        if name is not None
    )


def extract_msgids(directory: Path) -> set[str]:
    """What `make catalogs` extracts: `--no-default-keywords -k gettext` over the package."""
    found = extract_from_dir(
        str(directory), method_map=[("**.py", "python")], keywords={"gettext": None}
    )
    return {
        message for _file, _line, message, _comments, _context in found if isinstance(message, str)
    }


def full_sms(wording: Wording) -> str:
    """An SMS with every part: label, original-language note, attachment, resume link."""
    request = send_request(attachments=(Attachment("form.pdf", ATTACHMENT_URL),))
    original = MessageText(BODY, "en", in_original_language=True)
    return render_sms(
        request, district(sms_label=True), "Dennis", original, wording, RESUME_LINK
    ).body


@pytest.fixture(scope="module")
def catalogs() -> GettextCatalogs:
    return GettextCatalogs()


# (a) every shipped language translates every message id


def test_the_shipped_languages_are_the_catalogs_on_disk() -> None:
    on_disk = {path.parent.parent.name for path in locale_dir().glob(f"*/LC_MESSAGES/{DOMAIN}.po")}

    assert on_disk == set(SHIPPED)


def test_the_template_has_the_message_ids() -> None:
    assert "For {first_name}: " in message_ids(template())


@pytest.mark.parametrize("language", LANGUAGES)
def test_catalog_translates_every_message_id(language: str) -> None:
    po = catalog(language)

    untranslated = [
        msgid
        for msgid in sorted(message_ids(template()))
        if po.get(msgid) is None or not po[msgid].string or po[msgid].fuzzy
    ]

    assert untranslated == []
    assert not po.fuzzy


@pytest.mark.parametrize("language", LANGUAGES)
def test_catalog_has_no_entries_the_template_dropped(language: str) -> None:
    # `make catalogs` turns them into obsolete (#~) entries, which read_po leaves out.
    assert message_ids(catalog(language)) - message_ids(template()) == set()


@pytest.mark.parametrize("language", LANGUAGES)
def test_catalog_headers(language: str) -> None:
    po = catalog(language)
    plural = gettext.c2py(po.plural_expr)

    assert po.locale_identifier == language
    assert po.charset == "utf-8"
    assert {plural(n) for n in range(1000)} <= set(range(po.num_plurals))


# (b) a translation has exactly the placeholders of its message id


@pytest.mark.parametrize("language", LANGUAGES)
def test_translations_keep_exactly_the_placeholders(language: str) -> None:
    mismatched = {
        msgid: msgstr
        for msgid, msgstr in translations(language).items()
        if msgstr and placeholders(msgid) != placeholders(msgstr)
    }

    assert mismatched == {}


def test_placeholder_check_sees_a_dropped_renamed_or_added_field() -> None:
    label = placeholders("For {first_name}: ")

    assert placeholders("Para: ") != label
    assert placeholders("Para {nombre}: ") != label
    assert placeholders("Para {first_name} {sender}: ") != label
    assert placeholders("Para {first_name}: ") == label


# (c) the template is up to date with the code


def test_template_has_exactly_the_message_ids_in_the_code() -> None:
    in_code = extract_msgids(Path(notifier.__file__).parent)

    assert in_code == message_ids(template()), "run `make catalogs` and translate what it adds"


def test_extraction_finds_a_new_gettext_call(tmp_path: Path) -> None:
    (tmp_path / "wording.py").write_text('def f(w):\n    return w.gettext("Read more")\n')

    assert extract_msgids(tmp_path) == {"Read more"}


# (d) a district's language tag gets its catalog


@pytest.mark.parametrize(("language", "tag"), list(SHIPPED.items()))
def test_wording_for_a_language_tag_is_its_catalog(
    catalogs: GettextCatalogs, language: str, tag: str
) -> None:
    wording = catalogs.wording(tag)

    assert {msgid: wording.gettext(msgid) for msgid in translations(language)} == translations(
        language
    )
    assert sms_label(wording, "Dennis") != "For Dennis: "
    assert "Dennis" in sms_label(wording, "Dennis")


@pytest.mark.parametrize(
    ("tag", "language"),
    [
        ("es-MX", "es"),
        ("pt-BR", "pt"),
        ("fr-CA", "fr"),
        ("zh-Hant-TW", "zh_Hant"),
        ("ZH-HANS", "zh_Hans"),
    ],
)
def test_regional_and_differently_cased_tags_get_the_language(
    catalogs: GettextCatalogs, tag: str, language: str
) -> None:
    label = translations(language)["For {first_name}: "]

    assert sms_label(catalogs.wording(tag), "Dennis") == label.format(first_name="Dennis")


def test_english_is_the_source_wording(catalogs: GettextCatalogs) -> None:
    assert sms_label(catalogs.wording("en"), "Dennis") == "For Dennis: "


# (e) real renderings format in every language


@pytest.mark.parametrize("tag", TAGS)
def test_sms_with_every_part_renders(catalogs: GettextCatalogs, tag: str) -> None:
    wording = catalogs.wording(tag)

    lines = full_sms(wording).split("\n")

    english = full_sms(gettext.NullTranslations()).split("\n")
    assert len(lines) == len(english) == 4  # message, note, attachment, resume link
    assert lines[0].startswith(sms_label(wording, "Dennis"))
    assert lines[0].endswith(BODY)
    assert ATTACHMENT_URL in lines[2]
    assert RESUME_LINK in lines[3]
    assert [line for line, source in zip(lines, english, strict=True) if line == source] == []


@pytest.mark.parametrize("tag", TAGS)
def test_email_with_every_part_renders(catalogs: GettextCatalogs, tag: str) -> None:
    wording = catalogs.wording(tag)
    request = send_request(
        attachments=(Attachment("form.pdf", ATTACHMENT_URL),), conversation_title=CONVERSATION
    )
    original = MessageText(BODY, "en", in_original_language=True)

    email = render_email(
        request, district(), tag, original, wording, names="Dennis", sent_at="Nov 28, 2026, 9:00 AM"
    )

    assert "Ms. Rivera" in email.subject
    assert CONVERSATION in email.subject
    assert "Ms. Rivera" in email_subject(send_request(), wording)
    assert "Springfield Public Schools" in email.text
    assert not {"{", "}"} & set(email.subject + email.text)
    assert "New message" not in email.subject


@pytest.mark.parametrize("language", GSM7_WORDING)
def test_sms_wording_keeps_an_english_original_in_gsm7(
    catalogs: GettextCatalogs, language: str
) -> None:
    body = full_sms(catalogs.wording(SHIPPED[language]))

    outside = sorted({char for char in body if char not in GSM7_BASIC + GSM7_EXTENSION})

    assert outside == []


@pytest.mark.parametrize(
    ("tag", "catalog"),
    [
        ("zh-TW", "zh-Hant"),
        ("zh-HK", "zh-Hant"),
        ("zh-CN", "zh-Hans"),
        ("zh", "zh-Hans"),
        ("fil", "tl"),
    ],
)
def test_regional_and_alternative_tags_find_their_catalog(tag: str, catalog: str) -> None:
    catalogs = GettextCatalogs()
    label = "For {first_name}: "
    assert catalogs.wording(tag).gettext(label) == catalogs.wording(catalog).gettext(label)
    assert catalogs.wording(tag).gettext(label) != label


@pytest.mark.parametrize(
    ("zone", "moment"),
    [
        ("../../etc/passwd", datetime(2026, 11, 28, 15, tzinfo=UTC)),
        ("Pacific/Kiritimati", datetime(9999, 12, 31, 23, 0, tzinfo=UTC)),
        ("Etc/GMT+12", datetime(1, 1, 1, 1, 0, tzinfo=UTC)),
    ],
)
def test_a_time_that_cannot_be_shown_in_the_zone_is_shown_in_utc(
    zone: str, moment: datetime
) -> None:
    # A district stored before zones were validated, or a moment at the calendar's ends.
    shown = GettextCatalogs().format_datetime("en", moment, zone)

    assert shown == GettextCatalogs().format_datetime("en", moment, "UTC")


def test_remembered_date_lines_answer_for_their_own_language_moment_and_zone() -> None:
    # Asked in an order that would show a line remembered under too coarse a key.
    catalogs = GettextCatalogs()
    morning = datetime(2026, 12, 7, 14, 5, tzinfo=UTC)
    asked = [
        ("en", morning, "America/Chicago"),
        ("es", morning, "America/Chicago"),
        ("en", morning, "Asia/Tokyo"),
        ("en", morning.replace(minute=35), "America/Chicago"),
        ("en", morning, "America/Chicago"),
    ]
    lines = [catalogs.format_datetime(*question) for question in asked]

    fresh = [GettextCatalogs().format_datetime(*question) for question in asked]
    assert lines == fresh
    assert len(set(lines[:4])) == 4
    assert lines[0] == "Dec 7, 2026, 8:05\u202fAM"


def test_remembered_wording_is_each_tags_own() -> None:
    catalogs = GettextCatalogs()
    for tag in ["es", "en", "es-MX", "vi", "en", "es"]:
        assert catalogs.wording(tag).gettext("Attachments:") == (
            GettextCatalogs().wording(tag).gettext("Attachments:")
        )
    spanish, english = (catalogs.wording(tag).gettext("Attachments:") for tag in ("es", "en"))
    assert spanish != english

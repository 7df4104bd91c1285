"""System wording from gettext catalogs managed with Babel (src/notifier/locale/).

The .po files are the source of truth; they are compiled in memory when the service starts,
so no generated binary can drift from them.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import datetime
from functools import cache, lru_cache
from importlib.resources import files
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_time, get_timezone
from babel.lists import format_list
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

DOMAIN = "notifier"

REMEMBERED_LANGUAGES = 256
"""Language tags whose wording and locale are kept worked out (a district has a handful)."""
REMEMBERED_DATE_LINES = 4096
"""Date lines kept formatted, by language, moment and zone: the requests in flight."""


def locale_dir() -> Path:
    return Path(str(files("notifier") / "locale"))


class GettextCatalogs:
    """The Catalogs port: one gettext translation per language, loaded once."""

    def __init__(self, directory: Path | None = None) -> None:
        self._directory = directory or locale_dir()
        self._translations: dict[str, NullTranslations] = {}
        for po_file in sorted(self._directory.glob(f"*/LC_MESSAGES/{DOMAIN}.po")):
            language = po_file.parent.parent.name
            with po_file.open("rb") as source:
                catalog = read_po(source, locale=_babel_locale(language), domain=DOMAIN)
            compiled = io.BytesIO()
            write_mo(compiled, catalog)
            compiled.seek(0)
            self._translations[_key(language)] = Translations(compiled, domain=DOMAIN)
        # Each text and email asks for its language's wording and most emails for a date
        # line, the same few answers over and over (a request's recipients share its time,
        # and mostly their language): worked out once each. A date line took 12 µs.
        self._wording = lru_cache(maxsize=REMEMBERED_LANGUAGES)(self._find_wording)
        self._datetime = lru_cache(maxsize=REMEMBERED_DATE_LINES)(_format_datetime)

    source_language = "en"
    """The message ids are the English wording."""

    @property
    def languages(self) -> tuple[str, ...]:
        """The languages with a catalog, besides the source language."""
        return tuple(sorted(self._translations))

    def wording(self, language: str) -> NullTranslations:
        return self._wording(language)

    def _find_wording(self, language: str) -> NullTranslations:
        for candidate in _fallbacks(language):
            found = self._translations.get(candidate)
            if found is not None:
                return found
        # English is the source language: the message ids are the English wording.
        return NullTranslations()

    def join_names(self, language: str, names: Sequence[str]) -> str:
        return format_list(list(names), locale=_locale_for(language))

    def format_datetime(self, language: str, moment: datetime, timezone: str) -> str:
        return self._datetime(language, moment, timezone)


def _format_datetime(language: str, moment: datetime, timezone: str) -> str:
    # A district stored before its time zone was validated may name none (or a path);
    # a moment at the very end of the calendar can't be shifted into every zone. Either
    # way the time is still worth telling, in UTC.
    try:
        zone = get_timezone(timezone)
        local = moment.astimezone(zone)
    except (LookupError, ValueError, OverflowError):
        zone = get_timezone("UTC")
        local = moment.astimezone(zone)
    locale = _locale_for(language)
    # The locale's own way of joining a date and a time ("{1}, {0}", "{0} {1}", ...);
    # a medium date with a short time (no seconds).
    day = format_date(local, "medium", locale=locale)
    hour = format_time(local, "short", tzinfo=zone, locale=locale)
    return str(locale.datetime_formats["medium"]).format(hour, day)


@lru_cache(maxsize=REMEMBERED_LANGUAGES)
def _locale_for(language: str) -> Locale:
    found = next((locale for locale in map(_babel_locale, _fallbacks(language)) if locale), None)
    return found or Locale("en")


def _key(language: str) -> str:
    return language.replace("_", "-").casefold()


# Tags that name a catalog by region or another code: Taiwan and Hong Kong write
# Traditional Chinese, mainland China and Singapore Simplified; Filipino is Tagalog here.
ALIASES = {
    "zh-tw": "zh-hant",
    "zh-hk": "zh-hant",
    "zh-mo": "zh-hant",
    "zh-cn": "zh-hans",
    "zh-sg": "zh-hans",
    "zh": "zh-hans",
    "fil": "tl",
}


def _fallbacks(language: str) -> list[str]:
    """zh-Hant-TW -> zh-hant-tw, zh-hant, zh (each also through its alias)."""
    parts = _key(language).split("-")
    candidates = ["-".join(parts[:n]) for n in range(len(parts), 0, -1)]
    return [
        alias for candidate in candidates for alias in (candidate, ALIASES.get(candidate)) if alias
    ]


@cache
def _babel_locale(language: str) -> Locale | None:
    try:
        return Locale.parse(language.replace("-", "_"))
    except (ValueError, UnknownLocaleError):
        return None

"""Offline language detection with lingua (its models ship inside the wheel), limited to
the languages districts write in: fewer candidates, fewer mistakes, less memory."""

from __future__ import annotations

from collections.abc import Iterable

from lingua import IsoCode639_1, LanguageDetector, LanguageDetectorBuilder

# Below this lead over the runner-up the detector says nothing: "ok" or "10am" has no
# language worth reporting.
MINIMUM_RELATIVE_DISTANCE = 0.25


class LinguaDetector:
    def __init__(self, languages: Iterable[str]) -> None:
        codes = {
            code
            for language in languages
            if (code := getattr(IsoCode639_1, language.split("-")[0].upper(), None)) is not None
        }
        self.languages = frozenset(code.name.lower() for code in codes)
        """The ones lingua knows among those asked for (Haitian Creole, for one, it does not)."""
        self._detector: LanguageDetector | None = (
            LanguageDetectorBuilder.from_iso_codes_639_1(*codes)
            .with_minimum_relative_distance(MINIMUM_RELATIVE_DISTANCE)
            .build()
            if len(codes) >= 2
            else None
        )

    def detect(self, text: str) -> str | None:
        if self._detector is None:
            return None
        language = self._detector.detect_language_of(text)
        return language.iso_code_639_1.name.lower() if language is not None else None

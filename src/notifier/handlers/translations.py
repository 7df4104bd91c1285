"""Machine translations of message bodies and replies: each text once per language, kept in
the store, and never a reason not to deliver."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from functools import partial

from notifier.domain.values import value_type
from notifier.ports import Metrics, ProviderError, TranslationCache, Translator

log = logging.getLogger(__name__)


@value_type
class TranslationSource:
    key: str
    """What the translations are kept under: the message id, or the reply id."""
    text: str
    language: str


Underway = dict[tuple[str, str], "asyncio.Task[str | None]"]
"""Translations being fetched, by (source key, language): two copies of one message in
flight at once (two batches open together, a redelivery) share one call to the translator
rather than both missing the store and paying for it twice."""


async def translations(
    source: TranslationSource,
    languages: Iterable[str],
    cache: TranslationCache,
    translator: Translator | None,
    metrics: Metrics,
    underway: Underway | None = None,
) -> dict[str, str]:
    """The text in each of these languages that can be had: from the store, else from the
    translator (bounded by its own timeout) and then kept. A language whose translation
    fails is left out; the caller falls back to the original."""
    wanted = sorted(set(languages) - {source.language})
    shared: Underway = {} if underway is None else underway
    found = await asyncio.gather(
        *(
            _once(
                shared,
                (source.key, lang),
                partial(_translation, source, lang, cache, translator, metrics),
            )
            for lang in wanted
        )
    )
    return {lang: text for lang, text in zip(wanted, found, strict=True) if text is not None}


async def _once(
    underway: Underway, key: tuple[str, str], fetch: Callable[[], Awaitable[str | None]]
) -> str | None:
    task = underway.get(key)
    if task is None:
        task = asyncio.ensure_future(fetch())
        underway[key] = task
        task.add_done_callback(lambda _: underway.pop(key, None))
    # Shielded: one waiter given up on (its batch cancelled) leaves the call to the others.
    return await asyncio.shield(task)


async def _translation(
    source: TranslationSource,
    language: str,
    cache: TranslationCache,
    translator: Translator | None,
    metrics: Metrics,
) -> str | None:
    cached = await cache.cached_translation(source.key, language)
    if cached is not None or translator is None:
        return cached
    try:
        text = await translator.translate(source.text, source=source.language, target=language)
    except ProviderError as error:
        log.warning("no %s translation of %s: %s", language, source.key, error)
        metrics.translation(translator.provider, "failed")
        return None
    await cache.save_translation(source.key, language, text, translator.provider)
    metrics.translation(translator.provider, "translated")
    return text

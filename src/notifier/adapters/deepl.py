"""DeepL: a message body translated as plain text through the ``deepl`` SDK
(``Translator.translate_text``, POST /v2/translate).

The SDK is synchronous (requests), so each call runs in a worker thread, bounded by our
timeout. Its own HTTP layer is unfit as it comes, as read in deepl 1.32:

- ``HttpClient.request_with_backoff`` retries 429 and 5xx up to
  ``deepl.http_client.max_network_retries`` (5) times with exponential backoff, and each
  attempt waits at least ``deepl.http_client.min_connection_timeout`` (10 s). Both are
  module globals, the SDK's only documented knobs. Whether and when to retry is the
  caller's decision (a translation that fails is replaced by the original text), so this
  adapter gives its Translator an HTTP client that makes exactly one attempt with our
  timeout, instead of changing the globals for the whole process.

When our timeout expires first, ``translate`` raises at once; the worker thread cannot be
interrupted and ends on its own within about one more timeout (the request's socket timeout
is the same), its result discarded.

Errors: https://developers.deepl.com/docs/best-practices/error-handling
Languages: https://developers.deepl.com/docs/getting-started/supported-languages
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import deepl

from notifier.adapters.translation import in_thread_with_timeout, unsupported_language
from notifier.domain.model import Reason
from notifier.ports import PermanentProviderError, ProviderError, TransientProviderError

PROVIDER = "deepl"

LANGUAGES: frozenset[str] = frozenset(
    # Every DeepL language, each both a source and a target (January 2026: the 81 former
    # beta languages are generally available). Lower-cased, each equals its BCP 47 primary
    # language subtag.
    """
    ace af an ar as ay az ba be bg bho bn br bs ca ceb ckb cs cy da de el en eo es et eu
    fa fi fr ga gl gn gom gu ha he hi hr ht hu hy id ig is it ja jv ka kk kmr ko ky la lb
    lmo ln lt lv mai mg mi mk ml mn mr ms mt my nb ne nl oc om pa pag pam pl prs ps pt qu
    ro ru sa scn sk sl sq sr st su sv sw ta te tg th tk tl tn tr ts tt uk ur uz vi wo xh
    yi yue zh zu
    """.split()  # noqa: SIM905 (a table of codes reads better as words)
)
"""DeepL has no Somali (so) or Hmong (hmn), for instance: such a target is refused before
any request."""

TARGET_VARIANTS: Mapping[str, str] = MappingProxyType(
    {
        # DeepL refuses the bare EN and PT as targets: it wants the variant.
        "en": "EN-US",
        "en-us": "EN-US",
        "en-gb": "EN-GB",
        "pt": "PT-BR",
        "pt-br": "PT-BR",
        "pt-pt": "PT-PT",
        "es-419": "ES-419",
        # Chinese by script; Taiwan, Hong Kong and Macau write Traditional Chinese.
        "zh": "ZH-HANS",
        "zh-hans": "ZH-HANS",
        "zh-cn": "ZH-HANS",
        "zh-sg": "ZH-HANS",
        "zh-hant": "ZH-HANT",
        "zh-tw": "ZH-HANT",
        "zh-hk": "ZH-HANT",
        "zh-mo": "ZH-HANT",
        # Other codes for languages DeepL has.
        "fil": "TL",
        "iw": "HE",
        "no": "NB",
    }
)
"""Language tags (lower-case) whose DeepL target code is not simply the upper-cased tag."""


def target_code(language: str) -> str | None:
    """DeepL's target_lang for a language tag (zh-Hant-TW -> ZH-HANT, pt -> PT-BR), trying
    the tag and then shorter prefixes of it; None when DeepL doesn't translate into it."""
    parts = language.replace("_", "-").casefold().split("-")
    for length in range(len(parts), 0, -1):
        candidate = "-".join(parts[:length])
        if candidate in TARGET_VARIANTS:
            return TARGET_VARIANTS[candidate]
        if length == 1 and candidate in LANGUAGES:
            return candidate.upper()
    return None


def source_code(language: str) -> str | None:
    """DeepL's source_lang: the language without its variant (ZH-HANT -> ZH, EN-US -> EN);
    None (DeepL detects the language) when DeepL doesn't know it."""
    code = target_code(language)
    return code.split("-", 1)[0] if code else None


class DeepLTranslator:
    """Translates plain text with DeepL (no tag handling: nothing is escaped or parsed)."""

    def __init__(
        self,
        *,
        auth_key: str,
        timeout_seconds: float,
        server_url: str | None = None,
    ) -> None:
        """``server_url`` None lets the SDK choose by key (a Free key, ending ":fx", goes to
        api-free.deepl.com); set it for a proxy or a fake server."""
        if not auth_key:
            raise ValueError("DeepL auth_key is required")
        if timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds must be positive, got {timeout_seconds}")
        self._timeout_seconds = timeout_seconds
        self._translator = deepl.Translator(auth_key, server_url=server_url)
        # No public seam for the HTTP client: replace the one the constructor made.
        self._translator._client.close()  # type: ignore[no-untyped-call]
        self._translator._client = _SingleAttempt(timeout_seconds)

    @property
    def provider(self) -> str:
        return PROVIDER

    async def translate(self, text: str, *, source: str, target: str) -> str:
        target_lang = target_code(target)
        if target_lang is None:
            raise unsupported_language(PROVIDER, "deepl", target)
        if not text.strip():
            return text
        try:
            return await in_thread_with_timeout(
                PROVIDER,
                self._timeout_seconds,
                lambda: self._translate(text, source_code(source), target_lang),
            )
        except deepl.DeepLException as error:
            raise _rejection(error) from error

    def close(self) -> None:
        """Close the SDK's connection pool (a call still running in a thread fails)."""
        self._translator.close()  # type: ignore[no-untyped-call]

    def _translate(self, text: str, source_lang: str | None, target_lang: str) -> str:
        result = self._translator.translate_text(
            text, source_lang=source_lang, target_lang=target_lang
        )
        # One text in, one result out (a list only for a list of texts).
        assert isinstance(result, deepl.TextResult)
        return result.text


class _SingleAttempt(deepl.http_client.HttpClient):
    """The SDK's HTTP client (requests, its headers and error wrapping) making one attempt
    with our timeout: ``request_with_backoff`` is what the Translator calls."""

    def __init__(self, timeout_seconds: float) -> None:
        super().__init__(send_platform_info=False)
        self._timeout_seconds = timeout_seconds

    def request_with_backoff(
        self,
        method: str,
        url: str,
        data: dict[Any, Any] | None,
        json: dict[Any, Any] | None,
        headers: dict[Any, Any],
        stream: bool = False,
        **kwargs: Any,
    ) -> tuple[int, Any]:
        request = self._prepare_request(method, url, data, json, headers, **kwargs)
        return self._internal_request(request, stream, timeout=self._timeout_seconds)


TRANSIENT_STATUSES = frozenset({429, 456})
"""429: too many requests. 456: the character quota of the billing period is used up; it
comes back with the next period or a raised limit, and meanwhile the original text is sent.
Any 5xx is transient too; any other status (400 bad request, 403 wrong key, 404 wrong
server URL, 413 too large) is permanent."""


def _rejection(error: deepl.DeepLException) -> ProviderError:
    status = error.http_status_code
    if status is None:
        # Below HTTP: ConnectionException says whether the request could be tried again
        # (connection refused or reset, a socket timeout) or not (a malformed URL).
        if error.should_retry:
            return TransientProviderError(PROVIDER, str(error))
        return PermanentProviderError(PROVIDER, str(error), reason=Reason.PROVIDER_ERROR)
    if status in TRANSIENT_STATUSES or status >= 500:
        return TransientProviderError(PROVIDER, str(error), code=str(status))
    return PermanentProviderError(
        PROVIDER, str(error), reason=Reason.PROVIDER_ERROR, code=str(status)
    )

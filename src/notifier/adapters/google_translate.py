"""Google Cloud Translation - Basic (v2): a message body translated as plain text through
``google-cloud-translate``'s REST client (``google.cloud.translate_v2.Client.translate``,
POST /language/translate/v2).

v2, not v3: the v3 client speaks gRPC, while v2 is JSON over requests with the endpoint set
by ``client_options={"api_endpoint": ...}``, which a proxy or a fake server can stand
behind. It authenticates with an API key (sent as x-goog-api-key) or, without one, with
Application Default Credentials (a service account).

``format_="text"`` on every call: v2 treats the input as HTML by default and returns it
HTML-escaped (``&#39;`` for an apostrophe), which would show up verbatim in an SMS.

The SDK is synchronous, so each call runs in a worker thread, bounded by our timeout.
``Client.translate`` takes no timeout and its connection waits 60 s per request, so the
client is given its session (the SDK's ``_http`` parameter, meant for this: any object with
``requests.Session.request``'s interface): google-auth's AuthorizedSession, with our timeout
on every request and as ``max_allowed_time`` for the whole call, credential refresh
included. When our timeout expires first, ``translate`` raises at once; the worker thread
cannot be interrupted and ends on its own within about one more timeout, its result
discarded. The client makes one attempt: the SDK does not retry.

Errors: https://cloud.google.com/translate/docs/reference/rest/v2/translate and
https://cloud.google.com/apis/design/errors
Languages: https://cloud.google.com/translate/docs/languages
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import google.auth
import google.auth.api_key
import google.auth.credentials
import google.auth.exceptions
import requests
from google.api_core import exceptions as google_errors
from google.auth.transport.requests import AuthorizedSession
from google.cloud.translate_v2 import Client as TranslateClient

from notifier.adapters.translation import in_thread_with_timeout, unsupported_language
from notifier.domain.model import Reason
from notifier.ports import PermanentProviderError, ProviderError, TransientProviderError

PROVIDER = "google_translate"

DEFAULT_API_ENDPOINT = "https://translation.googleapis.com"

LANGUAGES: frozenset[str] = frozenset(
    # Cloud Translation's NMT languages (ISO 639 codes, as v2 takes them) as of its 2022
    # additions; Google has added more since, and each is one word here.
    """
    af ak am ar as ay az be bg bho bm bn bs ca ceb ckb co cs cy da de doi dv ee el en eo
    es et eu fa fi fr fy ga gd gl gn gom gu ha haw he hi hmn hr ht hu hy id ig ilo is it
    ja jv ka kk km kn ko kri ku ky la lb lg ln lo lt lus lv mai mg mi mk ml mn mr ms mt my
    ne nl no nso ny om or pa pl ps pt qu ro ru rw sa sd si sk sl sm sn so sq sr st su sv
    sw ta te tg th ti tk tl tr ts tt ug uk ur uz vi xh yi yo zu
    """.split()  # noqa: SIM905 (a table of codes reads better as words)
)

CODE_VARIANTS: Mapping[str, str] = MappingProxyType(
    {
        # Chinese by script (BCP 47 region codes are how v2 names them); Taiwan, Hong Kong
        # and Macau write Traditional Chinese.
        "zh": "zh-CN",
        "zh-hans": "zh-CN",
        "zh-cn": "zh-CN",
        "zh-sg": "zh-CN",
        "zh-hant": "zh-TW",
        "zh-tw": "zh-TW",
        "zh-hk": "zh-TW",
        "zh-mo": "zh-TW",
        # v2's "pt" is Brazilian Portuguese.
        "pt-pt": "pt-PT",
        "mni": "mni-Mtei",
        "mni-mtei": "mni-Mtei",
        # Other codes for languages Google has.
        "fil": "tl",
        "iw": "he",
        "nb": "no",
    }
)
"""Language tags (lower-case) whose Google code is not simply the primary language
subtag."""


def language_code(language: str) -> str | None:
    """Google's code for a language tag (zh-Hant-TW -> zh-TW, pt-BR -> pt), trying the tag
    and then shorter prefixes of it; None when Google doesn't translate it."""
    parts = language.replace("_", "-").casefold().split("-")
    for length in range(len(parts), 0, -1):
        candidate = "-".join(parts[:length])
        if candidate in CODE_VARIANTS:
            return CODE_VARIANTS[candidate]
        if length == 1 and candidate in LANGUAGES:
            return candidate
    return None


class GoogleTranslator:
    """Translates plain text with Cloud Translation - Basic."""

    def __init__(
        self,
        *,
        timeout_seconds: float,
        api_key: str | None = None,
        api_endpoint: str = DEFAULT_API_ENDPOINT,
    ) -> None:
        """Without ``api_key``, Application Default Credentials are looked up here (the
        GOOGLE_APPLICATION_CREDENTIALS file, gcloud's, or the metadata server); this blocks
        and raises google.auth's DefaultCredentialsError when none are found."""
        if timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds must be positive, got {timeout_seconds}")
        credentials: google.auth.credentials.Credentials
        if api_key is not None:
            if not api_key:
                raise ValueError("the Google api_key, when given, must not be empty")
            credentials = google.auth.api_key.Credentials(api_key)  # type: ignore[no-untyped-call]
        else:
            credentials, _ = google.auth.default(scopes=TranslateClient.SCOPE)
        self._timeout_seconds = timeout_seconds
        self._client = TranslateClient(
            credentials=credentials,
            _http=_BoundedSession(credentials, timeout_seconds),
            client_options={"api_endpoint": api_endpoint},
        )

    @property
    def provider(self) -> str:
        return PROVIDER

    async def translate(self, text: str, *, source: str, target: str) -> str:
        target_code = language_code(target)
        if target_code is None:
            raise unsupported_language(PROVIDER, "google", target)
        if not text.strip():
            return text
        try:
            return await in_thread_with_timeout(
                PROVIDER,
                self._timeout_seconds,
                lambda: self._translate(text, language_code(source), target_code),
            )
        except google_errors.GoogleAPICallError as error:
            raise _rejection(error) from error
        except (requests.RequestException, google.auth.exceptions.TransportError) as error:
            # Connection refused or reset, a socket timeout: nothing was translated.
            raise TransientProviderError(PROVIDER, f"{type(error).__name__}: {error}") from error
        except google.auth.exceptions.RefreshError as error:
            # The service account's token could not be refreshed.
            if error.retryable:
                raise TransientProviderError(PROVIDER, str(error)) from error
            raise PermanentProviderError(
                PROVIDER, str(error), reason=Reason.PROVIDER_ERROR
            ) from error

    def close(self) -> None:
        """Close the client's connection pool (a call still running in a thread fails)."""
        self._client.close()

    def _translate(self, text: str, source: str | None, target: str) -> str:
        # Without a source, Google detects the language.
        result: dict[str, Any] = self._client.translate(
            text, target_language=target, source_language=source, format_="text"
        )
        translated: str = result["translatedText"]
        return translated


class _BoundedSession(AuthorizedSession):
    """An authorized requests session whose every request has our timeout."""

    def __init__(
        self, credentials: google.auth.credentials.Credentials, timeout_seconds: float
    ) -> None:
        super().__init__(credentials)  # type: ignore[no-untyped-call]
        self._timeout_seconds = timeout_seconds

    def request(self, method: Any, url: Any, *args: Any, **kwargs: Any) -> Any:
        # The connection passes everything but method and url by name.
        kwargs["timeout"] = self._timeout_seconds
        # A retry after refreshing credentials passes what is left of the first one.
        kwargs.setdefault("max_allowed_time", self._timeout_seconds)
        return super().request(method, url, *args, **kwargs)  # type: ignore[no-untyped-call]


RATE_LIMIT_REASONS = frozenset(
    {"rateLimitExceeded", "userRateLimitExceeded", "dailyLimitExceeded", "RATE_LIMIT_EXCEEDED"}
)
"""A 403 with one of these reasons is a quota or rate limit (v2 answers some limits with 403
rather than 429): transient. Any other 403 (the API not enabled, a restricted key) is
permanent."""


def _rejection(error: google_errors.GoogleAPICallError) -> ProviderError:
    status = error.code
    detail = error.message
    code = str(status) if status is not None else None
    reasons = {item.get("reason") for item in error.errors if isinstance(item, dict)} | {
        error.reason
    }
    if (
        status is None
        or status == 429
        or status >= 500
        or (status == 403 and reasons & RATE_LIMIT_REASONS)
    ):
        return TransientProviderError(PROVIDER, detail, code=code)
    # 400 (an invalid API key, an unknown language), 401, 403, 404: retrying cannot help.
    return PermanentProviderError(PROVIDER, detail, reason=Reason.PROVIDER_ERROR, code=code)

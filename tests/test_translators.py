"""DeepLTranslator and GoogleTranslator through their real SDKs (deepl, google-cloud-translate)
against fake DeepL and Google Cloud Translation HTTP servers."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import pytest

from notifier.adapters.deepl import DeepLTranslator
from notifier.adapters.google_translate import GoogleTranslator
from notifier.domain.model import Reason
from notifier.ports import PermanentProviderError, TransientProviderError
from tests.fakes.deepl_server import FakeDeepL
from tests.fakes.google_translate_server import FakeGoogleTranslate

DEEPL_KEY = "test-deepl-key:fx"
GOOGLE_KEY = "test-google-key"
TEXT = "Field trip forms are due Friday."


class Translator(Protocol):
    """The port both adapters implement (notifier.ports.Translator)."""

    @property
    def provider(self) -> str: ...

    async def translate(self, text: str, *, source: str, target: str) -> str: ...


@pytest.fixture
def deepl() -> Iterator[FakeDeepL]:
    with FakeDeepL(auth_key=DEEPL_KEY) as fake:
        yield fake


@pytest.fixture
def google() -> Iterator[FakeGoogleTranslate]:
    with FakeGoogleTranslate(api_key=GOOGLE_KEY) as fake:
        yield fake


def deepl_translator(
    base_url: str, *, auth_key: str = DEEPL_KEY, timeout_seconds: float = 5.0
) -> DeepLTranslator:
    return DeepLTranslator(auth_key=auth_key, server_url=base_url, timeout_seconds=timeout_seconds)


def google_translator(
    base_url: str, *, api_key: str = GOOGLE_KEY, timeout_seconds: float = 5.0
) -> GoogleTranslator:
    return GoogleTranslator(api_key=api_key, api_endpoint=base_url, timeout_seconds=timeout_seconds)


# DeepL


@pytest.mark.parametrize(
    ("target", "code"),
    [
        ("zh-Hans", "ZH-HANS"),
        ("zh-Hant", "ZH-HANT"),
        ("zh-TW", "ZH-HANT"),
        ("zh-Hant-HK", "ZH-HANT"),
        ("zh", "ZH-HANS"),
        ("pt", "PT-BR"),
        ("pt-PT", "PT-PT"),
        ("en", "EN-US"),
        ("es", "ES"),
        ("es-MX", "ES"),
        ("vi", "VI"),
        ("ht", "HT"),
        ("tl", "TL"),
        ("fil", "TL"),
        ("ar", "AR"),
        ("fr", "FR"),
        ("ko", "KO"),
        ("ru", "RU"),
        ("uk", "UK"),
    ],
)
async def test_deepl_translates_into_deepl_target_codes_with_the_auth_key(
    deepl: FakeDeepL, target: str, code: str
) -> None:
    translated = await deepl_translator(deepl.base_url).translate(TEXT, source="en", target=target)

    assert translated == f"[{code}] {TEXT}"
    [request] = deepl.received
    assert request.method == "POST"
    assert request.path == "/v2/translate"
    assert request.headers["authorization"] == f"DeepL-Auth-Key {DEEPL_KEY}"
    assert request.body["text"] == [TEXT]
    assert request.body["target_lang"] == code
    assert request.body["source_lang"] == "EN"


@pytest.mark.parametrize(
    ("source", "code"), [("zh-Hant", "ZH"), ("zh-Hans", "ZH"), ("pt-BR", "PT"), ("en-US", "EN")]
)
async def test_deepl_source_language_is_sent_without_its_variant(
    deepl: FakeDeepL, source: str, code: str
) -> None:
    await deepl_translator(deepl.base_url).translate(TEXT, source=source, target="es")

    assert deepl.received[0].body["source_lang"] == code


async def test_deepl_detects_a_source_language_it_does_not_know(deepl: FakeDeepL) -> None:
    translated = await deepl_translator(deepl.base_url).translate(TEXT, source="so", target="es")

    assert translated == f"[ES] {TEXT}"
    assert "source_lang" not in deepl.received[0].body


@pytest.mark.parametrize("target", ["so", "hmn", "tlh"])
async def test_deepl_refuses_a_target_it_does_not_translate_without_a_request(
    deepl: FakeDeepL, target: str
) -> None:
    with pytest.raises(PermanentProviderError) as raised:
        await deepl_translator(deepl.base_url).translate(TEXT, source="en", target=target)

    assert raised.value.reason is Reason.PROVIDER_ERROR
    assert raised.value.detail == f"deepl does not translate into {target}"
    assert raised.value.code == "unsupported_language"
    assert deepl.received == []


async def test_deepl_sends_plain_text_and_gets_it_back_untouched(deepl: FakeDeepL) -> None:
    text = 'Don\'t miss "Family Night" <6 pm> & bring a dish'

    translated = await deepl_translator(deepl.base_url).translate(text, source="en", target="fr")

    assert translated == f"[FR] {text}"
    [request] = deepl.received
    assert request.body["text"] == [text]
    assert "tag_handling" not in request.body


async def test_deepl_wrong_key_is_permanent(deepl: FakeDeepL) -> None:
    translator = deepl_translator(deepl.base_url, auth_key="not-the-key")

    with pytest.raises(PermanentProviderError) as raised:
        await translator.translate(TEXT, source="en", target="es")

    assert raised.value.reason is Reason.PROVIDER_ERROR
    assert raised.value.code == "403"


async def test_deepl_quota_exceeded_is_transient(deepl: FakeDeepL) -> None:
    deepl.fail_next(status=456)

    with pytest.raises(TransientProviderError) as raised:
        await deepl_translator(deepl.base_url).translate(TEXT, source="en", target="es")

    assert raised.value.code == "456"
    assert len(deepl.received) == 1


async def test_deepl_bad_request_is_permanent(deepl: FakeDeepL) -> None:
    deepl.fail_next(status=400, message="Value for 'target_lang' not supported.")

    with pytest.raises(PermanentProviderError) as raised:
        await deepl_translator(deepl.base_url).translate(TEXT, source="en", target="es")

    assert raised.value.code == "400"
    assert "target_lang" in raised.value.detail


# Google Cloud Translation


@pytest.mark.parametrize(
    ("target", "code"),
    [
        ("zh-Hans", "zh-CN"),
        ("zh-Hant", "zh-TW"),
        ("zh-HK", "zh-TW"),
        ("zh-Hant-TW", "zh-TW"),
        ("zh", "zh-CN"),
        ("pt", "pt"),
        ("pt-BR", "pt"),
        ("pt-PT", "pt-PT"),
        ("es", "es"),
        ("vi", "vi"),
        ("ht", "ht"),
        ("so", "so"),
        ("tl", "tl"),
        ("fil", "tl"),
        ("hmn", "hmn"),
        ("ar", "ar"),
        ("ko", "ko"),
        ("uk", "uk"),
    ],
)
async def test_google_translates_into_google_codes_as_text_with_the_api_key(
    google: FakeGoogleTranslate, target: str, code: str
) -> None:
    translated = await google_translator(google.base_url).translate(
        TEXT, source="en", target=target
    )

    assert translated == f"[{code}] {TEXT}"
    [request] = google.received
    assert request.method == "POST"
    assert request.path.split("?")[0] == "/language/translate/v2"
    assert request.headers["x-goog-api-key"] == GOOGLE_KEY
    assert request.body["q"] == [TEXT]
    assert request.body["target"] == code
    assert request.body["source"] == "en"
    assert request.body["format"] == "text"


async def test_google_source_language_is_sent_as_google_code(google: FakeGoogleTranslate) -> None:
    await google_translator(google.base_url).translate(TEXT, source="zh-Hant", target="en")

    assert google.received[0].body["source"] == "zh-TW"


async def test_google_detects_a_source_language_it_does_not_know(
    google: FakeGoogleTranslate,
) -> None:
    translated = await google_translator(google.base_url).translate(TEXT, source="tlh", target="es")

    assert translated == f"[es] {TEXT}"
    assert google.received[0].body["source"] is None


@pytest.mark.parametrize("target", ["tlh", "zz"])
async def test_google_refuses_a_target_it_does_not_translate_without_a_request(
    google: FakeGoogleTranslate, target: str
) -> None:
    with pytest.raises(PermanentProviderError) as raised:
        await google_translator(google.base_url).translate(TEXT, source="en", target=target)

    assert raised.value.reason is Reason.PROVIDER_ERROR
    assert raised.value.detail == f"google does not translate into {target}"
    assert google.received == []


async def test_google_text_is_not_html_escaped_because_it_is_sent_as_text(
    google: FakeGoogleTranslate,
) -> None:
    text = 'Don\'t miss "Family Night" <6 pm> & bring a dish'

    translated = await google_translator(google.base_url).translate(text, source="en", target="es")

    # In Google's default html format this would come back as "Don&#39;t ... &amp; ...".
    assert translated == f"[es] {text}"
    assert google.translations[0].format == "text"


async def test_google_invalid_api_key_is_permanent(google: FakeGoogleTranslate) -> None:
    translator = google_translator(google.base_url, api_key="not-the-key")

    with pytest.raises(PermanentProviderError) as raised:
        await translator.translate(TEXT, source="en", target="es")

    assert raised.value.reason is Reason.PROVIDER_ERROR
    assert raised.value.code == "400"
    assert "API key not valid" in raised.value.detail


@pytest.mark.parametrize("reason", ["rateLimitExceeded", "userRateLimitExceeded"])
async def test_google_rate_limit_answered_with_403_is_transient(
    google: FakeGoogleTranslate, reason: str
) -> None:
    google.fail_next(status=403, reason=reason, message="User Rate Limit Exceeded")

    with pytest.raises(TransientProviderError) as raised:
        await google_translator(google.base_url).translate(TEXT, source="en", target="es")

    assert raised.value.code == "403"


async def test_google_api_not_enabled_is_permanent(google: FakeGoogleTranslate) -> None:
    google.fail_next(
        status=403,
        reason="accessNotConfigured",
        message="Cloud Translation API has not been used in project 1 before or it is disabled.",
    )

    with pytest.raises(PermanentProviderError) as raised:
        await google_translator(google.base_url).translate(TEXT, source="en", target="es")

    assert raised.value.code == "403"


# Both vendors


@dataclass(frozen=True)
class Vendor:
    fake: FakeDeepL | FakeGoogleTranslate
    translator: Callable[..., Translator]
    """Takes a base URL and optionally timeout_seconds."""


@pytest.fixture(params=["deepl", "google"])
def vendor(request: pytest.FixtureRequest) -> Iterator[Vendor]:
    if request.param == "deepl":
        with FakeDeepL(auth_key=DEEPL_KEY) as deepl_fake:
            yield Vendor(deepl_fake, deepl_translator)
    else:
        with FakeGoogleTranslate(api_key=GOOGLE_KEY) as google_fake:
            yield Vendor(google_fake, google_translator)


@pytest.mark.parametrize("status", [429, 500, 502, 503])
async def test_overload_or_server_error_is_transient_after_a_single_attempt(
    vendor: Vendor, status: int
) -> None:
    vendor.fake.fail_next(status=status)

    with pytest.raises(TransientProviderError) as raised:
        await vendor.translator(vendor.fake.base_url).translate(TEXT, source="en", target="es")

    assert raised.value.code == str(status)
    # No retries inside the SDK: the caller decides, and meanwhile sends the original.
    assert len(vendor.fake.received) == 1


async def test_slow_vendor_is_transient_within_the_timeout(vendor: Vendor) -> None:
    vendor.fake.delay_seconds = 10
    translator = vendor.translator(vendor.fake.base_url, timeout_seconds=0.5)

    started = time.monotonic()
    with pytest.raises(TransientProviderError) as raised:
        await translator.translate(TEXT, source="en", target="es")
    elapsed = time.monotonic() - started

    assert raised.value.code == "timeout"
    assert elapsed < 0.5 + 1


async def test_translator_works_again_after_a_timeout(vendor: Vendor) -> None:
    translator = vendor.translator(vendor.fake.base_url, timeout_seconds=0.5)
    vendor.fake.delay_seconds = 10
    with pytest.raises(TransientProviderError):
        await translator.translate(TEXT, source="en", target="es")

    vendor.fake.delay_seconds = 0
    translated = await translator.translate(TEXT, source="en", target="es")

    assert translated.endswith(TEXT)


async def test_refused_connection_is_transient(vendor: Vendor) -> None:
    # Bound but not listening: the port stays ours and every connect is refused.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]

        with pytest.raises(TransientProviderError):
            await vendor.translator(f"http://127.0.0.1:{port}").translate(
                TEXT, source="en", target="es"
            )


@pytest.mark.parametrize("text", ["", "  \n"])
async def test_blank_text_is_returned_without_a_request(vendor: Vendor, text: str) -> None:
    translated = await vendor.translator(vendor.fake.base_url).translate(
        text, source="en", target="es"
    )

    assert translated == text
    assert vendor.fake.received == []


async def test_each_call_is_one_request_with_its_one_text(vendor: Vendor) -> None:
    translator = vendor.translator(vendor.fake.base_url)

    first = await translator.translate("Hello", source="en", target="vi")
    second = await translator.translate("Goodbye", source="en", target="vi")

    assert first.endswith("] Hello")
    assert second.endswith("] Goodbye")
    sent = [request.body.get("text") or request.body.get("q") for request in vendor.fake.received]
    assert sent == [["Hello"], ["Goodbye"]]


def test_providers_are_named_for_the_delivery_record() -> None:
    assert deepl_translator("http://127.0.0.1:9").provider == "deepl"
    assert google_translator("http://127.0.0.1:9").provider == "google_translate"


@pytest.mark.parametrize(
    ("build", "complaint"),
    [
        (lambda: DeepLTranslator(auth_key="", timeout_seconds=1), "auth_key"),
        (lambda: DeepLTranslator(auth_key=DEEPL_KEY, timeout_seconds=0), "timeout_seconds"),
        (lambda: GoogleTranslator(api_key="", timeout_seconds=1), "api_key"),
        (lambda: GoogleTranslator(api_key=GOOGLE_KEY, timeout_seconds=-1), "timeout_seconds"),
    ],
)
def test_misconfiguration_is_refused_at_construction(
    build: Callable[[], object], complaint: str
) -> None:
    with pytest.raises(ValueError, match=complaint):
        build()

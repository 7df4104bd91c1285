"""A local HTTP server that speaks the part of Google Cloud Translation - Basic (v2) notifier
uses: translate.

    with FakeGoogleTranslate() as google:
        ...  # point the adapter at google.base_url, then look at google.received

Run alone (for the demo): ``python -m tests.fakes.google_translate_server --port 8704``.

Behaviour follows https://cloud.google.com/translate/docs/reference/rest/v2/translate: POST
/language/translate/v2 authenticated by an API key (the x-goog-api-key header or the ``key``
query parameter) or an OAuth bearer token, parameters ``q`` (a string or a list),
``target``, ``source``, ``format`` ("html" unless "text") and ``model`` as JSON (or a form);
200 with {"data": {"translations": [{"translatedText", "detectedSourceLanguage" (only
without a source)}]}}; errors in Google's JSON error format, {"error": {"code", "message",
"errors": [{"message", "domain", "reason"}], "status", "details"}}, with an invalid API key
refused as 400 API_KEY_INVALID (https://cloud.google.com/apis/design/errors).

The translation is deterministic, so tests can assert it: "[<target>] <q>". In "html"
format, as Google does, the result comes back HTML-escaped (an apostrophe as ``&#39;``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.http_server import (
    FakeJsonApi,
    ReceivedRequest,
    Reply,
    serve_until_signalled,
    server_arguments,
)

DEFAULT_API_KEY = "fake-google-api-key"

TRANSLATE_PATH = "/language/translate/v2"

LANGUAGES = frozenset(
    """
    af ak am ar as ay az be bg bho bm bn bs ca ceb ckb co cs cy da de doi dv ee el en eo
    es et eu fa fi fil fr fy ga gd gl gn gom gu ha haw he hi hmn hr ht hu hy id ig ilo is
    it iw ja jv jw ka kk km kn ko kri ku ky la lb lg ln lo lt lus lv mai mg mi mk ml
    mni-mtei mn mr ms mt my ne nl no nso ny om or pa pl ps pt pt-pt qu ro ru rw sa sd si sk
    sl sm sn so sq sr st su sv sw ta te tg th ti tk tl tr ts tt ug uk ur uz vi xh yi yo
    zh zh-cn zh-tw zu
    """.split()  # noqa: SIM905 (a table of codes reads better as words)
)
"""Codes v2 accepts (lower-cased), https://cloud.google.com/translate/docs/languages."""

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


@dataclass(frozen=True, slots=True)
class Translation:
    """One text Google answered with 200."""

    text: str
    source: str | None
    target: str
    format: str
    translated: str


@dataclass(frozen=True, slots=True)
class ScriptedFailure:
    status: int
    message: str
    reason: str
    """The ``errors[].reason``: e.g. "backendError", "rateLimitExceeded",
    "userRateLimitExceeded", "accessNotConfigured"."""


class FakeGoogleTranslate(FakeJsonApi[ScriptedFailure]):
    """Cloud Translation - Basic's translate method, as described above."""

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        bearer_token: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        delay_seconds: float = 0.0,
    ) -> None:
        super().__init__(
            name="fake-google-translate",
            host=host,
            port=port,
            delay_seconds=delay_seconds,
            unavailable=ScriptedFailure(
                status=503, message="The service is currently unavailable.", reason="backendError"
            ),
        )
        self.api_key = api_key
        self.bearer_token = bearer_token
        self._translations: list[Translation] = []

    @property
    def translations(self) -> list[Translation]:
        """The texts translated so far, oldest first (a copy)."""
        with self._lock:
            return list(self._translations)

    def fail_next(
        self,
        *,
        status: int = 503,
        count: int = 1,
        reason: str = "backendError",
        message: str | None = None,
    ) -> None:
        """Answer the next ``count`` requests with this error instead of handling them
        (before authentication, like trouble in front of the API)."""
        failure = ScriptedFailure(status=status, message=message or f"HTTP {status}", reason=reason)
        self._fail_next(failure, count)

    # Called from handler threads.

    def _failure_reply(self, failure: ScriptedFailure) -> Reply:
        return failure.status, {}, _error(failure.status, failure.message, failure.reason)

    def _handle(self, request: ReceivedRequest) -> Reply:
        url = urlsplit(request.path)
        query = {name: values[-1] for name, values in parse_qs(url.query).items()}
        denied = self._authentication_error(request, query)
        if denied is not None:
            return denied
        if request.method != "POST" or url.path != TRANSLATE_PATH:
            return 404, {}, _error(404, "Not Found", "notFound")
        params = _parameters(request, query)
        if params is None:
            return 400, {}, _error(400, "Invalid JSON payload received.", "badRequest")
        texts = params.get("q")
        if isinstance(texts, str):
            texts = [texts]
        target = params.get("target")
        source = params.get("source")
        text_format = params.get("format") or "html"
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            return 400, {}, _error(400, "Required Text", "required")
        if not isinstance(target, str) or not target:
            return 400, {}, _error(400, "Required Target language", "required")
        if target.lower() not in LANGUAGES:
            return 400, {}, _error(400, "Invalid Value", "invalid")
        if source is not None and (not isinstance(source, str) or source.lower() not in LANGUAGES):
            return 400, {}, _error(400, "Invalid Value", "invalid")
        if text_format not in ("html", "text"):
            return 400, {}, _error(400, "Invalid Value", "invalid")
        results = []
        with self._lock:
            for text in texts:
                translated = f"[{target}] {text}"
                if text_format == "html":
                    translated = _html_escaped(translated)
                self._translations.append(
                    Translation(
                        text=text,
                        source=source,
                        target=target,
                        format=text_format,
                        translated=translated,
                    )
                )
                result = {"translatedText": translated}
                if source is None:
                    result["detectedSourceLanguage"] = "en"
                results.append(result)
        return 200, {}, {"data": {"translations": results}}

    def _authentication_error(
        self, request: ReceivedRequest, query: dict[str, str]
    ) -> Reply | None:
        key = request.headers.get("x-goog-api-key") or query.get("key")
        authorization = request.headers.get("authorization")
        if key is not None:
            if key == self.api_key:
                return None
            return (
                400,
                {},
                _error(
                    400,
                    "API key not valid. Please pass a valid API key.",
                    "badRequest",
                    error_info="API_KEY_INVALID",
                ),
            )
        if self.bearer_token is not None and authorization == f"Bearer {self.bearer_token}":
            return None
        if authorization is not None:
            return (
                401,
                {},
                _error(
                    401,
                    "Request had invalid authentication credentials.",
                    "authError",
                    error_info="ACCESS_TOKEN_TYPE_UNSUPPORTED",
                ),
            )
        return 403, {}, _error(403, "The request is missing a valid API key.", "forbidden")


def _parameters(request: ReceivedRequest, query: dict[str, str]) -> dict[str, Any] | None:
    """The request's parameters: the JSON body, or the form and query string."""
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            body = json.loads(request.content)
        except ValueError:
            return None
        return body if isinstance(body, dict) else None
    fields = parse_qs(request.content.decode("utf-8"), keep_blank_values=True)
    params: dict[str, Any] = dict(query)
    params.update({name: values[-1] for name, values in fields.items()})
    params["q"] = fields.get("q") or query.get("q")
    return params


def _html_escaped(text: str) -> str:
    # What Google's html format does to characters special in HTML text (tags pass through).
    return text.replace("&", "&amp;").replace("'", "&#39;").replace('"', "&quot;")


def _error(status: int, message: str, reason: str, *, error_info: str | None = None) -> Any:
    error: dict[str, Any] = {
        "code": status,
        "message": message,
        "errors": [{"message": message, "domain": "global", "reason": reason}],
        "status": _STATUS_NAMES.get(status, "UNKNOWN"),
    }
    if error_info is not None:
        error["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": error_info,
                "domain": "googleapis.com",
                "metadata": {"service": "translate.googleapis.com"},
            }
        ]
    return {"error": error}


def main(argv: list[str] | None = None) -> None:
    parser = server_arguments("Run a fake Google Cloud Translation v2 API until killed.")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY)
    args = parser.parse_args(argv)
    serve_until_signalled(
        FakeGoogleTranslate(
            api_key=args.api_key, host=args.host, port=args.port, delay_seconds=args.delay
        )
    )


if __name__ == "__main__":
    main()

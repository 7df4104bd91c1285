"""A local HTTP server that speaks the part of DeepL's API notifier uses: text translation.

    with FakeDeepL() as deepl:
        ...  # point the adapter at deepl.base_url, then look at deepl.received

Run alone (for the demo): ``python -m tests.fakes.deepl_server --port 8703``.

Behaviour follows DeepL's OpenAPI description (https://developers.deepl.com/api-reference,
``/v2/translate``): POST with "Authorization: DeepL-Auth-Key <key>", a JSON body (or the
older form encoding, ``text`` repeated) with ``text`` (a list), ``target_lang`` and
optionally ``source_lang``; 200 with {"translations": [{"detected_source_language", "text",
"billed_characters"}]}; errors as {"message"} with 400 (bad parameters), 403 (wrong key),
429 (too many requests), 456 (quota exceeded) and 5xx.

The translation is deterministic, so tests can assert it: "[<target_lang>] <text>", the
text character for character (look at ``received`` for tag_handling and other options).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from tests.fakes.http_server import (
    FakeJsonApi,
    ReceivedRequest,
    Reply,
    serve_until_signalled,
    server_arguments,
)

DEFAULT_AUTH_KEY = "fake-deepl-key:fx"

SOURCE_LANGUAGES = frozenset(
    """
    ACE AF AN AR AS AY AZ BA BE BG BHO BN BR BS CA CEB CKB CS CY DA DE EL EN EO ES ET EU
    FA FI FR GA GL GN GOM GU HA HE HI HR HT HU HY ID IG IS IT JA JV KA KK KMR KO KY LA LB
    LMO LN LT LV MAI MG MI MK ML MN MR MS MT MY NB NE NL OC OM PA PAG PAM PL PRS PS PT QU
    RO RU SA SCN SK SL SQ SR ST SU SV SW TA TE TG TH TK TL TN TR TS TT UK UR UZ VI WO XH
    YI YUE ZH ZU
    """.split()  # noqa: SIM905 (a table of codes reads better as words)
)
"""DeepL's source languages (https://developers.deepl.com/docs/getting-started/supported-languages)."""

TARGET_LANGUAGES = (SOURCE_LANGUAGES - {"EN", "PT"}) | {
    "EN-GB",
    "EN-US",
    "ES-419",
    "PT-BR",
    "PT-PT",
    "ZH-HANS",
    "ZH-HANT",
}
"""Its target languages: the same, with English and Portuguese only as variants (ZH, an
older name of ZH-HANS, is still accepted)."""


@dataclass(frozen=True, slots=True)
class Translation:
    """One text DeepL answered with 200."""

    text: str
    source_lang: str | None
    target_lang: str
    translated: str


@dataclass(frozen=True, slots=True)
class ScriptedFailure:
    status: int
    message: str


class FakeDeepL(FakeJsonApi[ScriptedFailure]):
    """DeepL's text translation API, as described above."""

    def __init__(
        self,
        *,
        auth_key: str = DEFAULT_AUTH_KEY,
        host: str = "127.0.0.1",
        port: int = 0,
        delay_seconds: float = 0.0,
    ) -> None:
        super().__init__(
            name="fake-deepl",
            host=host,
            port=port,
            delay_seconds=delay_seconds,
            unavailable=ScriptedFailure(status=503, message="Service unavailable"),
        )
        self.auth_key = auth_key
        self._translations: list[Translation] = []

    @property
    def translations(self) -> list[Translation]:
        """The texts translated so far, oldest first (a copy)."""
        with self._lock:
            return list(self._translations)

    def fail_next(self, *, status: int = 503, count: int = 1, message: str | None = None) -> None:
        """Answer the next ``count`` requests with this error instead of handling them
        (before authentication, like trouble in front of the API)."""
        failure = ScriptedFailure(
            status=status, message=message or _STATUS_MESSAGES.get(status, "Error")
        )
        self._fail_next(failure, count)

    # Called from handler threads.

    def _failure_reply(self, failure: ScriptedFailure) -> Reply:
        return failure.status, {}, {"message": failure.message}

    def _handle(self, request: ReceivedRequest) -> Reply:
        if request.headers.get("authorization") != f"DeepL-Auth-Key {self.auth_key}":
            return 403, {}, {"message": _STATUS_MESSAGES[403]}
        if request.method != "POST" or request.path.split("?", 1)[0] != "/v2/translate":
            return 404, {}, {"message": "Not found"}
        params = _parameters(request)
        if params is None:
            return 400, {}, {"message": "Invalid request body"}
        texts = params.get("text")
        target = params.get("target_lang")
        source = params.get("source_lang")
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            return 400, {}, {"message": "Parameter 'text' not specified."}
        if not isinstance(target, str) or not target:
            return 400, {}, {"message": "Parameter 'target_lang' not specified."}
        target = target.upper()
        if target not in TARGET_LANGUAGES and target != "ZH":
            return 400, {}, {"message": "Value for 'target_lang' not supported."}
        if source is not None:
            if not isinstance(source, str) or source.upper() not in SOURCE_LANGUAGES:
                return 400, {}, {"message": "Value for 'source_lang' not supported."}
            source = source.upper()
        results = []
        with self._lock:
            for text in texts:
                translated = f"[{target}] {text}"
                self._translations.append(
                    Translation(
                        text=text, source_lang=source, target_lang=target, translated=translated
                    )
                )
                results.append(
                    {
                        "detected_source_language": source or "EN",
                        "text": translated,
                        "billed_characters": len(text),
                    }
                )
        return 200, {}, {"translations": results}


_STATUS_MESSAGES: dict[int, str] = {
    400: "Bad request",
    403: "Authorization failed. Please supply a valid DeepL-Auth-Key via the Authorization header.",
    404: "Not found",
    413: "Request Entity Too Large",
    429: "Too many requests. Please wait and resend your request.",
    456: "Quota exceeded. The character limit has been reached.",
    500: "Internal error",
    503: "Resource currently unavailable. Try again later.",
}


def _parameters(request: ReceivedRequest) -> dict[str, Any] | None:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        try:
            body = json.loads(request.content)
        except ValueError:
            return None
        return body if isinstance(body, dict) else None
    # The older form encoding: every field a string, "text" repeated.
    fields = parse_qs(request.content.decode("utf-8"), keep_blank_values=True)
    params: dict[str, Any] = {name: values[-1] for name, values in fields.items()}
    params["text"] = fields.get("text")
    return params


def main(argv: list[str] | None = None) -> None:
    parser = server_arguments("Run a fake DeepL translation API until killed.")
    parser.add_argument("--auth-key", default=DEFAULT_AUTH_KEY)
    args = parser.parse_args(argv)
    serve_until_signalled(
        FakeDeepL(auth_key=args.auth_key, host=args.host, port=args.port, delay_seconds=args.delay)
    )


if __name__ == "__main__":
    main()

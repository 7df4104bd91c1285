"""What a person wrote in an email reply, without the quoted notification and signature
beneath it: mail-parser-reply, which knows the "On … wrote:" headers, Outlook separators,
signatures and disclaimers of many languages and mail clients."""

from __future__ import annotations

import re
from collections.abc import Iterable

from mailparser_reply import EmailReplyParser

# mail-parser-reply misses some clients' headers (Gmail's Spanish "El …, … escribió:"
# among them). Whatever it leaves, a trailing block of "> " lines is quoted history, and
# so is the one line introducing it ("…:" just above).
_TRAILING_QUOTE = re.compile(r"(?:\n[^\n]*:[ \t]*)?(?:\n[ \t]*>[^\n]*)+\s*\Z")


class MailReplyParser:
    def __init__(self, languages: Iterable[str]) -> None:
        # The parser knows languages by two-letter code and ignores the ones it lacks.
        codes = {language.split("-")[0].lower() for language in languages} | {"en"}
        self._parser = EmailReplyParser(languages=sorted(codes))

    def new_text(self, body: str) -> str:
        replies = self._parser.read(body.replace("\r\n", "\n")).replies
        if not replies:
            return body.strip()
        latest = replies[0]
        # Without the signature and disclaimers, unless that leaves nothing ("Thanks,").
        text = latest.body or latest.full_body
        return _TRAILING_QUOTE.sub("", "\n" + text).strip()

"""Personal data and credentials out of the logs: masked in every log line, whoever wrote it
(our code, uvicorn's access log, aiokafka, SQLAlchemy), keeping just enough to tell things
apart when debugging.

- A phone number, its "+" as written or URL-encoded (once or twice): ``+***23``. Without
  the "+" (offsets and ids are digit runs too) only in the URL places below.
- An email address, its "@" as written or URL-encoded (once or twice), a reply address
  (``reply+<token>@…``) included: ``***@example.org``; a URL's password too (``user:***@``).
- Base64url text that decodes to either, with its dotted parts (a resume link's token and
  signature): ``***``.
- Our API tokens (``ntf_***``) and JWTs (``eyJ***``).
- In a URL, whatever they hold: the segment after ``/r/`` (a resume link is a credential for
  72 hours) and after ``/sendgrid/inbound/`` (the Inbound Parse secret), the address of
  ``/contact-points/{channel}/{address}``, and every query value that is not a number
  (``?q=***&limit=50``, ``?phone=+***23``).

Each kind has its compiled pattern, run only on text holding a character its matches must
have; only base64url runs of 12 characters or more with a capital are decoded, and only
decoded bytes with an "@" or a "+" are searched again.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

_PLUS = r"(?:\+|%2[Bb]|%252[Bb])"
_AT = r"(?:@|%40|%2540)"
# Space, brackets, dot and dash, as people write numbers ("+1 (555) 555-0123"), or encoded.
_SEPARATOR = r"(?:[\s().-]|%2[089]|%252[089])"
# The leading "+" is required: offsets, epoch milliseconds and ids are bare digit runs.
_PHONE = rf"{_PLUS}\d(?:\d|{_SEPARATOR}){{6,}}\d"
# A local part, its characters as written or encoded (but for the "@" that ends it). Taken
# possessively and only from its first character, so that each run of text is read once. A
# quote may be inside it (o'brien@), not before it ('a@b.org' in a repr).
_EMAIL = (
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-](?:[A-Za-z0-9._+'-]|%(?!40|2540)[0-9A-Fa-f]{2})*+"
    rf"{_AT}(?P<domain>[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)"
)
_SEGMENT = r"[^/\s?#&\"'<>\\]+"
# Each pattern starts with a character (set) outside any group, so that the scan skips to
# the places a match can start instead of trying every branch at every character.
_URL_PARTS = re.compile(
    r"[/?&](?:"
    rf"(?<=/)(?P<secret_path>r/|sendgrid/inbound/){_SEGMENT}"
    rf"|(?<=/)(?P<address_path>contact-points/[a-z]+/)(?P<address_segment>{_SEGMENT})"
    r"|(?<=[?&])(?P<query_key>[A-Za-z0-9_.\[\]-]+=)(?P<query_value>[^&\s\"'#<>\\]+)"
    r")"
)
_EMAILS = re.compile(_EMAIL)
_PHONES = re.compile(_PHONE)
_CREDENTIALS = re.compile(r"ntf_[A-Za-z0-9_-]+|eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
# Dotted parts go together: a resume token is its payload and its signature.
_ENCODED = re.compile(r"[A-Za-z0-9_-]{12,}+=*(?:\.[A-Za-z0-9_-]+=*)*")
# What an address looks like once decoded from base64 (stricter: decoded bytes are noise).
_DECODED_ADDRESS = re.compile(
    rb"\+\d[\d\s().-]{6,}\d|[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
)
# What _masked_address writes, left as it is when a masked line is masked again.
_MASK = re.compile(r"\+\*\*\*\d{0,2}|\*\*\*(?:@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)?")
_ESCAPE = re.compile(r"%(?:25)?[0-9A-Fa-f]{2}")
_NOT_DIGIT = re.compile(r"\D")


def mask_text(text: str) -> str:
    # URLs first: their parts are masked whole, whatever they hold. Each pass runs only if
    # the text has a character its matches must have (a cheap substring search).
    if "/" in text or "=" in text:
        text = _URL_PARTS.sub(_masked_url_part, text)
    if "@" in text or "%40" in text or "%2540" in text:
        text = _EMAILS.sub(_masked_email, text)
    if "+" in text or "%2" in text:
        text = _PHONES.sub(_masked_phone, text)
    if "ntf_" in text or "eyJ" in text:
        text = _CREDENTIALS.sub(_masked_credential, text)
    return _ENCODED.sub(_masked_encoded, text)


def mask_value(value: Any) -> Any:
    """A log line's field with its text masked, nested containers included; anything else is
    masked as the text it would be rendered as."""
    if isinstance(value, str):
        return mask_text(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dict):
        return {key: mask_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [mask_value(item) for item in value]
    return mask_text(repr(value))


def _masked_url_part(found: re.Match[str]) -> str:
    lead = found.group(0)[0]
    if found["secret_path"]:
        return f"{lead}{found['secret_path']}***"
    if found["address_path"]:
        return f"{lead}{found['address_path']}{_masked_address(found['address_segment'])}"
    value = found["query_value"]
    return lead + found["query_key"] + (value if value.isdigit() else _masked_address(value))


def _masked_email(found: re.Match[str]) -> str:
    return f"***@{found['domain']}"


def _masked_phone(found: re.Match[str]) -> str:
    digits = _NOT_DIGIT.sub("", _ESCAPE.sub("", found.group(0)))
    return f"+***{digits[-2:]}"


def _masked_credential(found: re.Match[str]) -> str:
    return "ntf_***" if found.group(0).startswith("ntf_") else "eyJ***"


def _masked_address(text: str) -> str:
    """An address as its masked form; any other text (a name searched for, a token) as ***."""
    if _MASK.fullmatch(text):
        return text
    if email := _EMAILS.fullmatch(text):
        return _masked_email(email)
    if phone := _PHONES.fullmatch(text):
        return _masked_phone(phone)
    return "***"


def _masked_encoded(found: re.Match[str]) -> str:
    """Base64url text (its dotted parts) stays unless a part decodes to an address."""
    text = found.group(0)
    # Most runs are ids, hex digests and names in lower case, never an address's base64: a
    # digit, "+", "@", "." or a-g starting any of its 3-byte groups encodes as a capital.
    if text.islower():
        return text
    return "***" if any(map(_holds_address, text.split("."))) else text


def _holds_address(part: str) -> bool:
    encoded = part.rstrip("=")
    if len(encoded) < 12:
        return False
    try:
        decoded = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except (binascii.Error, ValueError):
        return False
    return (b"@" in decoded or b"+" in decoded) and _DECODED_ADDRESS.search(decoded) is not None

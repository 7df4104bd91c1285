"""The person's own reset: a short, signed, expiring link in the first fallback SMS for a
failing email address ("fixed your inbox? tap here"). HMAC-SHA256 over the address and the
expiry; the token carries both, so nothing needs storing."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime

SIGNATURE_BYTES = 12  # 96 bits: ample for a link that expires, and keeps SMS short


class InvalidResumeToken(Exception):
    pass


def make_token(address: str, expires_at: datetime, secret: bytes) -> str:
    payload = f"{int(expires_at.timestamp()):x}:{address}".encode()
    return f"{_b64(payload)}.{_b64(_sign(payload, secret))}"


def read_token(token: str, secret: bytes, now: datetime) -> str:
    """The email address the token resets; raises ``InvalidResumeToken`` otherwise."""
    try:
        encoded_payload, encoded_signature = token.split(".")
        payload = _unb64(encoded_payload)
        signature = _unb64(encoded_signature)
        expiry_hex, address = payload.decode().split(":", 1)
        expires_at = datetime.fromtimestamp(int(expiry_hex, 16), UTC)
    # An expiry past the calendar's end overflows; on some platforms it is an OSError.
    except (ValueError, UnicodeDecodeError, OverflowError, OSError) as error:
        raise InvalidResumeToken("malformed link") from error
    if not hmac.compare_digest(signature, _sign(payload, secret)):
        raise InvalidResumeToken("the link's signature does not match")
    if now >= expires_at:
        raise InvalidResumeToken("the link has expired")
    return address


def _sign(payload: bytes, secret: bytes) -> bytes:
    return hmac.new(secret, payload, hashlib.sha256).digest()[:SIGNATURE_BYTES]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))

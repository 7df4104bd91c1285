"""Per-delivery Reply-To addresses: ``reply+<token>@<district reply domain>``.

The token names one delivery (and through it the conversation and the recipients the email
was for) and is signed, so a reply can't be pointed at another conversation by editing the
address. It is built to survive mail systems: an address's local part may be at most 64
characters (RFC 5321 §4.5.3.1.1) and some servers change its case, so the token is the
delivery's 16 bytes and an 80-bit HMAC in lower-case base32 — 42 characters, case-blind.
A general-purpose signed serializer (itsdangerous and the like) writes twice that."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid

LOCAL_PART_PREFIX = "reply+"
SIGNATURE_BYTES = 10


class InvalidReplyAddress(Exception):
    pass


def reply_address(delivery_id: str, domain: str, secret: bytes) -> str:
    delivery = uuid.UUID(delivery_id).bytes
    token = base64.b32encode(delivery + _sign(delivery, secret)).decode().rstrip("=").lower()
    return f"{LOCAL_PART_PREFIX}{token}@{domain}"


def delivery_of(address: str, secret: bytes) -> str:
    """The delivery id a reply address stands for; raises ``InvalidReplyAddress`` for any
    address we did not sign."""
    local_part = address.strip().rsplit("@", 1)[0].lower()
    if not local_part.startswith(LOCAL_PART_PREFIX):
        raise InvalidReplyAddress("not a reply address")
    token = local_part.removeprefix(LOCAL_PART_PREFIX)
    try:
        raw = base64.b32decode(token.upper() + "=" * (-len(token) % 8))
    except ValueError as error:
        raise InvalidReplyAddress("malformed reply address") from error
    delivery, signature = raw[:16], raw[16:]
    if len(delivery) != 16 or not hmac.compare_digest(signature, _sign(delivery, secret)):
        raise InvalidReplyAddress("the reply address's signature does not match")
    return str(uuid.UUID(bytes=delivery))


def _sign(delivery: bytes, secret: bytes) -> bytes:
    return hmac.new(secret, b"reply-to\x1f" + delivery, hashlib.sha256).digest()[:SIGNATURE_BYTES]

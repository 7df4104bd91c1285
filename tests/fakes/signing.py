"""The providers' side of webhook signing, for tests: requests signed the way SendGrid and
Twilio sign them, with keys made up for the test.

    signer = SendGridWebhookSigner()
    headers = signer.sign(body, timestamp=int(time.time()))
    # configure the app with signer.public_key, then post body with headers
"""

from __future__ import annotations

import base64
from collections.abc import Mapping

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from twilio.request_validator import RequestValidator

SENDGRID_SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"


class SendGridWebhookSigner:
    """A fresh P-256 key pair, like the one SendGrid makes when the Signed Event Webhook is
    turned on (https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/getting-started-event-webhook-security-features)."""

    def __init__(self) -> None:
        self._private_key = ec.generate_private_key(ec.SECP256R1())
        der = self._private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public_key = base64.b64encode(der).decode("ascii")
        """The verification key as Mail Settings shows it: base64 of the DER
        SubjectPublicKeyInfo, on one line, without PEM armour."""

    def sign(self, body: bytes, timestamp: int) -> dict[str, str]:
        """The two headers SendGrid posts with ``body``: the timestamp, and base64 of the DER
        ECDSA-SHA256 signature over the timestamp's digits followed by the body's bytes."""
        stamp = str(timestamp)
        signature = self._private_key.sign(stamp.encode("ascii") + body, ec.ECDSA(hashes.SHA256()))
        return {
            SENDGRID_SIGNATURE_HEADER: base64.b64encode(signature).decode("ascii"),
            SENDGRID_TIMESTAMP_HEADER: stamp,
        }


def twilio_signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """X-Twilio-Signature for a form POST of ``params`` to ``url``, as Twilio computes it
    with the account's auth token (https://www.twilio.com/docs/usage/webhooks/webhooks-security)."""
    signature: str = RequestValidator(auth_token).compute_signature(url, dict(params))
    return signature

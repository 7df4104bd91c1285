"""A local OpenID Connect provider, as far as a resource server sees one: its discovery
document, its JWKS with freshly generated keys, and tokens signed with them.

    with FakeIdentityProvider() as idp:
        token = idp.mint({"sub": "alice", "scope": "support"})
        ...  # point the verifier at idp.jwks_url, then look at idp.jwks_fetches

Answers like Keycloak's endpoints (https://openid.net/specs/openid-connect-discovery-1_0.html,
RFC 7517 for the JWK Set). ``mint`` fills in iss, aud, iat and exp unless given; the
forging methods make the tokens an attacker would try.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from tests.fakes.http_server import (
    FakeJsonApi,
    ReceivedRequest,
    Reply,
    serve_until_signalled,
    server_arguments,
)

JWKS_PATH = "/.well-known/jwks.json"
DISCOVERY_PATH = "/.well-known/openid-configuration"
DEFAULT_AUDIENCE = "notifier"

Algorithm = Literal["RS256", "ES256"]
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    algorithm: Algorithm
    private_key: PrivateKey

    @staticmethod
    def generate(algorithm: Algorithm = "RS256", kid: str | None = None) -> SigningKey:
        private_key: PrivateKey
        if algorithm == "RS256":
            private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        else:
            private_key = ec.generate_private_key(ec.SECP256R1())
        return SigningKey(kid or uuid.uuid4().hex[:16], algorithm, private_key)

    @property
    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def jwk(self) -> dict[str, Any]:
        public_key = self.private_key.public_key()
        if isinstance(public_key, rsa.RSAPublicKey):
            fields = RSAAlgorithm.to_jwk(public_key, as_dict=True)
        else:
            fields = ECAlgorithm.to_jwk(public_key, as_dict=True)
        return {**fields, "kid": self.kid, "use": "sig", "alg": self.algorithm}


@dataclass(frozen=True, slots=True)
class ScriptedFailure:
    status: int


class FakeIdentityProvider(FakeJsonApi[ScriptedFailure]):
    """Publishes its signing keys (one to start with) and signs tokens with the newest."""

    def __init__(
        self,
        *,
        algorithm: Algorithm = "RS256",
        audience: str = DEFAULT_AUDIENCE,
        host: str = "127.0.0.1",
        port: int = 0,
        delay_seconds: float = 0.0,
    ) -> None:
        super().__init__(
            name="fake-identity-provider",
            host=host,
            port=port,
            delay_seconds=delay_seconds,
            unavailable=ScriptedFailure(status=503),
        )
        self.audience = audience
        self._keys = [SigningKey.generate(algorithm)]

    @property
    def issuer(self) -> str:
        return self.base_url

    @property
    def jwks_url(self) -> str:
        return self.base_url + JWKS_PATH

    @property
    def signing_key(self) -> SigningKey:
        """The key new tokens are signed with (the newest published)."""
        with self._lock:
            return self._keys[-1]

    @property
    def jwks_fetches(self) -> int:
        return sum(1 for request in self.received if request.path == JWKS_PATH)

    def rotate(self, *, algorithm: Algorithm = "RS256", keep_old: bool = True) -> SigningKey:
        """Publish a new key and sign with it from now on; ``keep_old`` leaves the previous
        keys published (tokens they signed stay verifiable), as providers do for a while."""
        key = SigningKey.generate(algorithm)
        with self._lock:
            self._keys = [*self._keys, key] if keep_old else [key]
        return key

    def fail_next(self, *, status: int = 503, count: int = 1) -> None:
        self._fail_next(ScriptedFailure(status), count)

    def claims(self, **overrides: Any) -> dict[str, Any]:
        """A token's usual claims, issued now for an hour; an override of None drops it."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": "5c7e1f0a-alice",
            "iat": now,
            "exp": now + 3600,
        }
        claims.update(overrides)
        return {name: value for name, value in claims.items() if value is not None}

    def mint(
        self,
        claims: dict[str, Any],
        *,
        key: SigningKey | None = None,
        kid: str | None = None,
        headers: dict[str, Any] | None = None,
    ) -> str:
        """Sign ``claims`` as given with ``key`` (default the current signing key), whose kid
        goes in the header unless ``kid`` says otherwise ("" for none)."""
        key = key or self.signing_key
        header_kid = key.kid if kid is None else kid
        return jwt.encode(
            claims,
            key.private_key,
            algorithm=key.algorithm,
            headers={**({"kid": header_kid} if header_kid else {}), **(headers or {})},
        )

    def forge_unsigned(self, claims: dict[str, Any]) -> str:
        """alg "none", with the current key's kid."""
        return _compact({"alg": "none", "typ": "JWT", "kid": self.signing_key.kid}, claims, b"")

    def forge_hs256_with_public_key(self, claims: dict[str, Any]) -> str:
        """HS256 with the published public key (PEM) as the shared secret: the key-confusion
        forgery a verifier that trusts the token's alg would accept."""
        key = self.signing_key
        header = {"alg": "HS256", "typ": "JWT", "kid": key.kid}
        signing_input = _signing_input(header, claims)
        signature = hmac.new(key.public_pem, signing_input, hashlib.sha256).digest()
        return _compact(header, claims, signature)

    def _handle(self, request: ReceivedRequest) -> Reply:
        if request.method != "GET":
            return 405, {}, {"error": "method not allowed"}
        if request.path == JWKS_PATH:
            with self._lock:
                keys = [key.jwk() for key in self._keys]
            return 200, {"Cache-Control": "max-age=300"}, {"keys": keys}
        if request.path == DISCOVERY_PATH:
            return (
                200,
                {},
                {
                    "issuer": self.issuer,
                    "jwks_uri": self.jwks_url,
                    "id_token_signing_alg_values_supported": ["RS256", "ES256"],
                },
            )
        return 404, {}, {"error": "not found"}

    def _failure_reply(self, failure: ScriptedFailure) -> Reply:
        return failure.status, {}, {"error": "unavailable"}


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _signing_input(header: dict[str, Any], claims: dict[str, Any]) -> bytes:
    return _b64(json.dumps(header).encode()) + b"." + _b64(json.dumps(claims).encode())


def _compact(header: dict[str, Any], claims: dict[str, Any], signature: bytes) -> str:
    return (_signing_input(header, claims) + b"." + _b64(signature)).decode()


if __name__ == "__main__":
    arguments = server_arguments("A fake OpenID Connect provider's JWKS.").parse_args()
    serve_until_signalled(
        FakeIdentityProvider(
            host=arguments.host, port=arguments.port, delay_seconds=arguments.delay
        )
    )

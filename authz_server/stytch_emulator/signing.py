"""The emulator's RS256 key, its JWKS entry, and session-JWT signing.

Written against ``cryptography`` directly: a JWT here is three base64url parts
and one PKCS#1 v1.5 signature, and doing it by hand keeps the exact header and
claim layout of Stytch's session JWTs in plain view.
"""
from __future__ import annotations

import base64
import json
import uuid

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _uint(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


class Signer:
    """One RSA key per emulator instance.

    The key survives ``/emulator/reset`` so JWKS caches in running clients stay
    valid; a new instance gets a new ``kid`` (never reuse a kid for another key:
    PyJWKClient caches by kid).
    """

    def __init__(self) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = f"jwk-test-{uuid.uuid4()}"

    def jwk(self) -> dict:
        numbers = self._key.public_key().public_numbers()
        # Every field is required by GetJWKSResponse, x5c/x5tS256 included.
        return {
            "kty": "RSA",
            "use": "sig",
            "key_ops": ["verify"],
            "alg": "RS256",
            "kid": self.kid,
            "x5c": [],
            "x5tS256": "",
            "n": _uint(numbers.n),
            "e": _uint(numbers.e),
        }

    def sign(self, claims: dict) -> str:
        header = {"alg": "RS256", "kid": self.kid, "typ": "JWT"}
        signing_input = ".".join(
            b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
        )
        signature = self._key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{b64url(signature)}"

    def verify(self, token: str) -> dict | None:
        """The claims if ``token`` carries a valid signature by this key, else None.

        Time claims are deliberately not checked: ``sessions.authenticate``
        must accept an expired JWT whose session is still alive, as Stytch's does.
        """
        try:
            header_b64, claims_b64, signature_b64 = token.split(".")
            header = json.loads(b64url_decode(header_b64))
            if header.get("alg") != "RS256" or header.get("kid") != self.kid:
                return None
            self._key.public_key().verify(
                b64url_decode(signature_b64),
                f"{header_b64}.{claims_b64}".encode("ascii"),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
            claims = json.loads(b64url_decode(claims_b64))
        except (ValueError, InvalidSignature, UnicodeError):
            return None
        return claims if isinstance(claims, dict) else None

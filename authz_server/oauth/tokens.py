"""Minting and checking our JWTs: RFC 9068 access tokens and OIDC id tokens.

Authlib's JWT generators sign with a random key of a KeySet and set no ``kid``
(docs/requirements.md: D-11), and cannot see the grant's resource (D-8), so tokens are
minted here with joserfc from the one active key, with ``kid`` in the header.
"""
from __future__ import annotations

import base64
import hashlib
import time

from joserfc import jwt
from joserfc.errors import JoseError

from ..security import new_id


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def at_hash(access_token: str) -> str:
    """OIDC Core §3.1.3.6: left half of the SHA-256 of the token (RS256/ES256)."""
    return _b64(hashlib.sha256(access_token.encode()).digest()[:16])


class TokenMinter:
    def __init__(self, settings, keys):
        self.settings = settings
        self.keys = keys

    def _sign(self, header_typ: str | None, claims: dict, alg: str) -> str:
        key = self.keys.signing_key(alg)
        header = {"alg": alg, "kid": key.kid}
        if header_typ:
            header["typ"] = header_typ
        return jwt.encode(header, claims, key)

    def access_token(self, *, client_id, subject, scope, audience, grant_id=None, auth_time=None,
                     organization_id=None, extra=None, now=None) -> tuple[str, dict]:
        """RFC 9068 §2.2: iss, exp, aud, sub, client_id, iat, jti (+ scope, auth_time)."""
        now = int(now if now is not None else time.time())
        claims = {
            "iss": self.settings.issuer,
            "sub": subject,
            "aud": audience if len(audience) != 1 else audience[0],
            "client_id": client_id,
            "iat": now,
            "nbf": now,
            "exp": now + self.settings.access_token_ttl,
            "jti": new_id("", 16),
        }
        if scope:
            claims["scope"] = scope
        if auth_time is not None:
            claims["auth_time"] = int(auth_time)
        if grant_id:
            claims["gid"] = grant_id
        if organization_id:
            claims["organization_id"] = organization_id
        if extra:
            claims.update({k: v for k, v in extra.items() if v is not None})
        return self._sign("at+jwt", claims, self.settings.access_token_alg), claims

    def id_token(self, *, client, subject, auth_time, nonce=None, access_token=None, user_claims=None,
                 now=None) -> str:
        """OIDC Core §2 / §3.1.3.6."""
        now = int(now if now is not None else time.time())
        claims = {
            "iss": self.settings.issuer,
            "sub": subject,
            "aud": client.client_id,
            "iat": now,
            "exp": now + self.settings.id_token_ttl,
            "auth_time": int(auth_time),
        }
        if nonce:
            claims["nonce"] = nonce
        if access_token:
            claims["at_hash"] = at_hash(access_token)
        for k, v in (user_claims or {}).items():
            if v is not None and k not in claims:
                claims[k] = v
        alg = client.id_token_signed_response_alg or self.settings.id_token_alg
        return self._sign("JWT", claims, alg)

    def decode(self, token: str, *, typ: str | None = "at+jwt", leeway: int = 0) -> dict | None:
        """Verify signature, issuer and expiry; None for anything invalid."""
        if not isinstance(token, str) or token.count(".") != 2 or len(token) > 8192:
            return None
        try:
            tok = jwt.decode(token, self.keys.verify_set(), algorithms=["ES256", "RS256"])
        except (JoseError, ValueError, KeyError, TypeError):
            return None
        if typ and tok.header.get("typ", "").lower() not in (typ, f"application/{typ}"):
            return None
        claims = tok.claims
        if claims.get("iss") != self.settings.issuer:
            return None
        exp = claims.get("exp")
        if not isinstance(exp, int) or exp + leeway <= time.time():
            return None
        return claims

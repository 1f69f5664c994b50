"""PKCE (RFC 7636), stricter than Authlib's default: a challenge is required on
every authorization request and only S256 is accepted (OAuth 2.1 §4.1.1, RFC 9700
§2.1.1; Authlib accepts ``plain`` and defaults an omitted method to it, docs/requirements.md: D-1)."""
from __future__ import annotations

from authlib.oauth2.rfc6749 import InvalidRequestError
from authlib.oauth2.rfc7636 import CodeChallenge


class RequiredS256CodeChallenge(CodeChallenge):
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant, redirect_uri):
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: send code_challenge and code_challenge_method=S256")
        if not data.get("code_challenge_method"):
            # RFC 7636 §4.3: an omitted method means "plain", which is refused.
            raise InvalidRequestError("Missing 'code_challenge_method': only S256 is supported")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("Unsupported 'code_challenge_method': only S256 is supported")
        super().validate_code_challenge(grant, redirect_uri)

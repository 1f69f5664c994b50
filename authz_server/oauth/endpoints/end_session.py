"""OIDC RP-Initiated Logout 1.0 on Authlib's EndSessionEndpoint: the id token
hint is checked against our JWKS (an expired one is fine), ``client_id`` must
be in its ``aud``, and the browser goes back only to an exactly registered
``post_logout_redirect_uri`` (§3), with ``state``."""
from __future__ import annotations

import base64
import json

from authlib.oauth2.rfc6749 import InvalidRequestError
from authlib.oidc.rpinitiated import EndSessionEndpoint as _EndSessionEndpoint


class EndSessionEndpoint(_EndSessionEndpoint):
    def __init__(self, end_session):
        super().__init__()
        self._end_session = end_session

    def get_server_jwks(self):
        return self.server.keys.verify_set()

    def get_algorithms(self):
        return ["RS256", "ES256"]

    def _validate_id_token_hint(self, id_token_hint):
        claims = super()._validate_id_token_hint(id_token_hint)
        # §2: the hint must be an ID Token this OP issued. Our access tokens are
        # signed with the same keys, so the signature alone would let a resource
        # server end the member's session without confirmation (§6); they are
        # typed at+jwt (RFC 9068 §2.1), id tokens are not.
        try:
            part = id_token_hint.split(".")[0]
            header = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
        except ValueError:
            header = {}
        typ = str(header.get("typ", "")).lower()
        if typ in ("at+jwt", "application/at+jwt") or claims.get("iss") != self.server.settings.issuer:
            raise InvalidRequestError("The id_token_hint is not an ID Token issued by this server")
        return claims

    def _is_valid_post_logout_redirect_uri(self, client, post_logout_redirect_uri):
        return post_logout_redirect_uri in client.post_logout_redirect_uris

    def end_session(self, end_session_request):
        self._end_session()

"""OIDC RP-Initiated Logout 1.0 on Authlib's EndSessionEndpoint: the id token
hint is checked against our JWKS (an expired one is fine), ``client_id`` must
be in its ``aud``, and the browser goes back only to an exactly registered
``post_logout_redirect_uri`` (§3), with ``state``."""
from __future__ import annotations

from authlib.oidc.rpinitiated import EndSessionEndpoint as _EndSessionEndpoint


class EndSessionEndpoint(_EndSessionEndpoint):
    def __init__(self, end_session):
        super().__init__()
        self._end_session = end_session

    def get_server_jwks(self):
        return self.server.keys.verify_set()

    def get_algorithms(self):
        return ["RS256", "ES256"]

    def _is_valid_post_logout_redirect_uri(self, client, post_logout_redirect_uri):
        return post_logout_redirect_uri in client.post_logout_redirect_uris

    def end_session(self, end_session_request):
        self._end_session()

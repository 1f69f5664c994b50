"""RFC 7009 token revocation on Authlib's RevocationEndpoint."""
from __future__ import annotations

from authlib.oauth2.rfc6749 import UnsupportedTokenTypeError
from authlib.oauth2.rfc7009 import RevocationEndpoint as _RevocationEndpoint

from ...sources import client_address
from ...storage import audit, grants as grant_store
from . import tokens_lookup
from ..grants.authorization_code import AUTH_METHODS


class RevocationEndpoint(_RevocationEndpoint):
    # Authlib defaults to client_secret_basic only (docs/requirements.md: D-2).
    CLIENT_AUTH_METHODS = AUTH_METHODS

    def query_token(self, token_string, token_type_hint):
        return tokens_lookup.find(self.server, token_string, token_type_hint)

    def check_params(self, request, client):
        try:
            super().check_params(request, client)
        except UnsupportedTokenTypeError as error:
            # RFC 7009 §2.2.1 / RFC 6749 §5.2: an error response is a 400; Authlib's
            # UnsupportedTokenTypeError is a ForbiddenError and answers 401.
            error.status_code = 400
            raise

    def authenticate_token(self, request, client):
        self.check_params(request, client)
        token = self.query_token(request.form["token"], request.form.get("token_type_hint"))
        # Another client's token: answer 200 and do nothing (RFC 7009 §2.1 allows
        # refusing; doing nothing reveals nothing).
        if token is not None and not token.check_client(client):
            return None
        return token

    def revoke_token(self, token, request):
        session = self.server.db.session
        if token.kind == "refresh_token":
            # Revoking a refresh token ends the grant and so its access tokens too (§2.1).
            grant_store.revoke(session, token.row.grant_id, "revoked_by_client")
            grant_id = token.row.grant_id
        else:
            grant_store.revoke_access_token(session, token.claims["jti"], token.claims["exp"])
            grant_id = token.claims.get("gid")
        audit.record(session, "token_revoked", ip=client_address(),
                     client_id=token.client_id, grant_id=grant_id, kind=token.kind)

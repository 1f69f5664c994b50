"""RFC 7662 token introspection on Authlib's IntrospectionEndpoint.

Who may ask: a confidential client that authenticates (public clients cannot,
and get 401 invalid_client: §2.1, §4 prevent token scanning). What it learns
(``oauth.permissions``): introspection is for resource servers, so only a client
an operator allowed to introspect some resources learns anything, and only
about access tokens whose ``aud`` names one of them (§4). Any other token, and
every refresh token (it concerns only the client it was issued to), is
``{"active": false}``, exactly as an unknown one."""
from __future__ import annotations

from authlib.oauth2.rfc6749 import InvalidRequestError
from authlib.oauth2.rfc7662 import IntrospectionEndpoint as _IntrospectionEndpoint

from .. import permissions
from . import tokens_lookup


class IntrospectionEndpoint(_IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def authenticate_token(self, request, client):
        self.check_params(request, client)
        # A client not allowed to introspect learns nothing, and costs no lookup.
        if not permissions.may_introspect(client):
            return None
        token = self.query_token(request.form["token"], request.form.get("token_type_hint"))
        if token is not None and self.check_permission(token, client, request):
            return token
        return None

    def query_token(self, token_string, token_type_hint):
        # Access tokens only, whatever the hint (§2.1: the hint MAY be ignored).
        return tokens_lookup.find(self.server, token_string, None, kinds=("access_token",))

    def check_params(self, request, client):
        # RFC 7662 §2.1: the hint only speeds up the search and MAY be ignored, so
        # an unknown hint value searches every type (Authlib answers 401
        # unsupported_token_type, an error RFC 7662 does not define).
        if "token" not in request.form:
            raise InvalidRequestError("Missing 'token' in request")

    def check_permission(self, token, client, request):
        return permissions.may_introspect_token(client, token.claims)

    def create_introspection_payload(self, token):
        # §2.2: inactive tokens get {"active": false} and nothing else.
        if token is None or not token.active:
            return {"active": False}
        return self.introspect_token(token)

    def introspect_token(self, token):
        c = token.claims
        out = {
            "active": True,
            "token_type": "Bearer",
            "scope": c.get("scope"),
            "client_id": c.get("client_id"),
            "sub": c.get("sub"),
            "aud": c.get("aud"),
            "iss": c.get("iss"),
            "exp": c.get("exp"),
            "iat": c.get("iat"),
            "nbf": c.get("nbf"),
            "jti": c.get("jti"),
            "auth_time": c.get("auth_time"),
            "organization_id": c.get("organization_id"),
        }
        return {k: v for k, v in out.items() if v not in (None, "")}

"""RFC 7662 token introspection on Authlib's IntrospectionEndpoint.

Who may ask: any confidential client that authenticates (resource servers are
registered as confidential clients). Public clients may not (§4: prevent token
scanning)."""
from __future__ import annotations

from authlib.oauth2.rfc6749 import InvalidRequestError
from authlib.oauth2.rfc7662 import IntrospectionEndpoint as _IntrospectionEndpoint

from . import tokens_lookup


class IntrospectionEndpoint(_IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def query_token(self, token_string, token_type_hint):
        return tokens_lookup.find(self.server, token_string, token_type_hint)

    def check_params(self, request, client):
        # RFC 7662 §2.1: the hint only speeds up the search and MAY be ignored, so
        # an unknown hint value searches every type (Authlib answers 401
        # unsupported_token_type, an error RFC 7662 does not define).
        if "token" not in request.form:
            raise InvalidRequestError("Missing 'token' in request")

    def check_permission(self, token, client, request):
        return not client.is_public

    def create_introspection_payload(self, token):
        # §2.2: inactive tokens get {"active": false} and nothing else.
        if token is None or not token.active:
            return {"active": False}
        return self.introspect_token(token)

    def introspect_token(self, token):
        if token.kind == "access_token":
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
        else:
            r = token.row
            out = {
                "active": True,
                "token_type": "refresh_token",
                "scope": r.scope,
                "client_id": r.client_id,
                "sub": r.subject,
                "iss": self.server.settings.issuer,
                "exp": int(r.expires_at.timestamp()),
                "iat": int(r.created_at.timestamp()),
                "organization_id": r.organization_id,
            }
        return {k: v for k, v in out.items() if v not in (None, "")}

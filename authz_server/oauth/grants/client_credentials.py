"""The client-credentials grant (RFC 6749 §4.4) for machine clients and agents
acting as themselves: ``sub`` is the client id (RFC 9068 §2.2). Nobody consents,
so the client gets only the resources, and their scopes, it was allowed
(``oauth.permissions``)."""
from __future__ import annotations

from authlib.oauth2.rfc6749 import InvalidScopeError, UnauthorizedClientError
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant as _ClientCredentialsGrant

from .. import issuance, permissions, resources, scopes as scope_rules

# Scopes about a member make no sense without one.
MEMBER_SCOPES = {"openid", "profile", "email", "offline_access"}


class ClientCredentialsGrant(_ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def validate_token_request(self):
        client = self.authenticate_token_endpoint_client()
        settings = self.server.settings
        if not permissions.may_use_client_credentials(client, settings):
            raise UnauthorizedClientError("The client is not allowed to use the client_credentials grant")
        session = self.server.db.session
        allowed = permissions.client_credentials_resources(client, settings)
        requested = self.request.payload.scope
        if requested:
            scopes = scope_rules.resolve_requested(session, client, requested)
            if scopes is None or MEMBER_SCOPES & set(scopes):
                raise InvalidScopeError("The requested scope is unknown or not allowed for this client")
            permissions.check_scopes(session, allowed, scopes)
        else:
            scopes = [s for s in client.scopes if s not in MEMBER_SCOPES]
            scopes = permissions.permitted_scopes(session, allowed, scopes)
        audience = resources.validate(session, self.request.payload.datalist.get("resource", []), settings.audience)
        permissions.check_audience(allowed, audience, settings.audience)
        self.request.client = client
        self.request.scope = scope_rules.join(scopes)
        self.request.resources = audience

    def create_token_response(self):
        client = self.request.client
        body = issuance.token_response(
            self.server, client,
            grant_type=self.GRANT_TYPE,
            subject=client.client_id,
            scope=self.request.scope,
            audience=self.request.resources or [self.server.settings.audience],
        )
        return 200, body, self.TOKEN_RESPONSE_HEADER

"""The refresh-token grant (RFC 6749 §6, OAuth 2.1 §4.3): rotation on every use,
family revocation on reuse (RFC 9700 §4.14.2), a grace window for concurrent
refreshes of the same token (docs/requirements.md: C-8). Authlib's grant neither rotates
(D-3) nor accepts public clients (D-2).

A replay inside the grace window is answered with the one child the first use
issued, so a family never has two live refresh tokens."""
from __future__ import annotations

from authlib.oauth2.rfc6749 import InvalidGrantError, InvalidScopeError, OAuth2Error
from authlib.oauth2.rfc6749.grants import RefreshTokenGrant as _RefreshTokenGrant

from ...identity.gateway import IdentityUnavailable
from ...sources import client_address
from ...storage import audit, grants as grant_store
from .. import issuance, resources, scopes as scope_rules
from .authorization_code import AUTH_METHODS


class TemporarilyUnavailableError(OAuth2Error):
    """Stytch cannot say whether the member is still active: retry later, keep
    the refresh token (it was not consumed)."""

    error = "temporarily_unavailable"
    status_code = 503
    description = "The identity provider is unreachable; retry shortly"

    def get_headers(self):
        return super().get_headers() + [("Retry-After", "5")]


class RefreshTokenGrant(_RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def _validate_request_token(self, client):
        from authlib.oauth2.rfc6749 import InvalidRequestError

        value = self.request.form.get("refresh_token")
        if value is None:
            raise InvalidRequestError("Missing 'refresh_token' in request.")
        session = self.server.db.session
        rotation = grant_store.use_refresh_token(
            session, value, client.client_id, self.server.settings.refresh_grace_seconds, self.server.kek
        )
        if rotation.reuse_detected:
            old = grant_store.find_refresh_token(session, value)
            grant_store.revoke(session, old.grant_id, "refresh_token_reused")
            audit.record(session, "refresh_token_reused", ip=client_address(),
                         client_id=old.client_id, subject=old.subject,
                         organization_id=old.organization_id, grant_id=old.grant_id)
            session.commit()  # the family stays revoked although this request fails
            raise InvalidGrantError("The refresh token was already used; its grant is revoked")
        if rotation.token is None:
            raise InvalidGrantError("The refresh token is invalid, expired or revoked")
        token = rotation.token
        try:
            active = self.server.member_active(token.organization_id, token.subject)
        except IdentityUnavailable:
            raise TemporarilyUnavailableError() from None
        if not active:
            # OAuth 2.1 §4.3.1: the grant must still be valid; the member is gone.
            session.rollback()
            grant_store.revoke(session, token.grant_id, "member_inactive")
            audit.record(session, "grant_revoked", ip=client_address(),
                         client_id=token.client_id, subject=token.subject,
                         organization_id=token.organization_id, grant_id=token.grant_id, reason="member_inactive")
            session.commit()
            raise InvalidGrantError("The member is no longer active in the organization")
        self.request.rotation = rotation
        return rotation.token

    def _validate_token_scope(self, token):
        # OAuth 2.1 §4.3.1: only narrowing, the original scope when none is sent.
        requested = scope_rules.split(self.request.payload.scope)
        if requested and not set(requested) <= set(scope_rules.split(token.scope)):
            raise InvalidScopeError("The requested scope exceeds the original grant")

    def create_token_response(self):
        request, server = self.request, self.server
        token = request.refresh_token
        client = request.client
        scope = self.request.payload.scope
        scope = scope_rules.join(scope_rules.split(scope)) if scope else token.scope
        audience = resources.narrow(
            request.payload.datalist.get("resource", []), list(token.resource or []), server.settings.audience
        )
        body = issuance.token_response(
            server, client,
            grant_type=self.GRANT_TYPE,
            subject=token.subject,
            scope=scope,
            audience=audience,
            organization_id=token.organization_id,
            member_claims=token.claims,
            auth_time=token.auth_time,
            grant_id=token.grant_id,
            # A replay inside the grace window gets the child already issued: a
            # fresh access token (stateless), but no second live refresh token.
            refresh_source=None if request.rotation.grace else token,
            refresh_token=request.rotation.child,
            grant_expires_at=token.grant_expires_at,
            parent_hash=token.token_hash,
            id_token=True,
        )
        return 200, body, self.TOKEN_RESPONSE_HEADER


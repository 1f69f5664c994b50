"""The device authorization endpoint (RFC 8628 §3.1–3.2) on Authlib's
DeviceAuthorizationEndpoint, with our scope catalog, resources (RFC 8707), codes
stored as digests and the client's right to the grant checked (Authlib issues
codes to any client and validates scope against nothing)."""
from __future__ import annotations

from authlib.consts import default_json_headers
from authlib.oauth2.rfc6749 import InvalidScopeError, UnauthorizedClientError
from authlib.oauth2.rfc8628 import DeviceAuthorizationEndpoint as _DeviceAuthorizationEndpoint

from ...sources import client_address
from ...storage import audit, device as device_store
from .. import permissions, resources, scopes as scope_rules
from ..grants.authorization_code import AUTH_METHODS
from ..grants.device_code import DEVICE_CODE_GRANT_TYPE


def verification_uri(issuer: str) -> str:
    return f"{issuer}/device"


class DeviceAuthorizationEndpoint(_DeviceAuthorizationEndpoint):
    # RFC 8628 §3.1: the client authenticates as at the token endpoint; a public
    # client sends only client_id.
    CLIENT_AUTH_METHODS = AUTH_METHODS

    def create_endpoint_response(self, request):
        server = self.server
        settings = server.settings
        client = self.authenticate_client(request)
        if not client.check_grant_type(DEVICE_CODE_GRANT_TYPE):
            raise UnauthorizedClientError("The client is not allowed to use the device authorization grant")
        session = server.db.session
        scopes = scope_rules.resolve_requested(session, client, request.payload.scope)
        if scopes is None:
            raise InvalidScopeError("The requested scope is unknown or not allowed for this client")
        scopes = scope_rules.granted(client, scopes)
        resource = resources.validate(session, request.payload.datalist.get("resource", []), settings.audience)
        # A client an operator limited to some resources (oauth.permissions).
        allowed = permissions.member_grant_resources(client)
        if allowed is not None:
            permissions.check_scopes(session, allowed, scopes)
            permissions.check_audience(allowed, resource, settings.audience)
        device_code, user_code, ttl = device_store.start(
            session, client_id=client.client_id, scope=scope_rules.join(scopes), resource=resource,
            ttl=settings.device_code_ttl, interval=settings.device_poll_interval,
        )
        audit.record(session, "device_authorization_started", ip=client_address(), client_id=client.client_id,
                     scope=scope_rules.join(scopes))
        uri = verification_uri(settings.issuer)
        body = {
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": uri,
            # §3.3.1: lets the member skip typing the code (a QR code, a link).
            "verification_uri_complete": f"{uri}?user_code={user_code}",
            "expires_in": ttl,
            "interval": settings.device_poll_interval,
        }
        return 200, body, default_json_headers  # with Cache-Control: no-store (§3.2)

"""The device-code grant (RFC 8628 §3.4–3.5) on Authlib's DeviceCodeGrant.

What Authlib 1.9 lacks and this adds: the device code is single-use (Authlib
issues tokens at every poll once approved), an unknown or foreign device code is
``invalid_grant`` (RFC 6749 §5.2; Authlib says invalid_request and
unauthorized_client), the client authenticates before anything about the code is
revealed, ``slow_down`` raises the stored interval by 5 s (§3.5), and tokens
come from our issuance (resources, refresh family, id token)."""
from __future__ import annotations

from authlib.oauth2.rfc6749 import AccessDeniedError, InvalidGrantError, InvalidRequestError, UnauthorizedClientError
from authlib.oauth2.rfc8628 import DeviceCodeGrant as _DeviceCodeGrant
from authlib.oauth2.rfc8628 import DEVICE_CODE_GRANT_TYPE
from authlib.oauth2.rfc8628.errors import AuthorizationPendingError, ExpiredTokenError, SlowDownError

from ...sources import client_address
from ...storage import audit, device as device_store, grants as grant_store
from .. import issuance, resources
from .authorization_code import AUTH_METHODS

__all__ = ["DEVICE_CODE_GRANT_TYPE", "DeviceCodeGrant"]


class DeviceCodeGrant(_DeviceCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def validate_token_request(self):
        client = self.authenticate_token_endpoint_client()
        if not client.check_grant_type(self.GRANT_TYPE):
            raise UnauthorizedClientError("The client is not allowed to use the device authorization grant")
        device_code = self.request.form.get("device_code")
        if not device_code:
            raise InvalidRequestError("Missing 'device_code' in request.")
        session = self.server.db.session
        found = device_store.poll(session, device_code, client.client_id)
        self.request.client = client
        if found.outcome == "issued":
            self.request.credential = found.row
            return
        if found.outcome == "replayed":
            self._handle_replay(found.row)
        # The polling state (last poll, a raised interval) stands although the
        # token endpoint rolls back every failed request.
        session.commit()
        if found.outcome == "pending":
            raise AuthorizationPendingError("The member has not approved the request yet; poll again")
        if found.outcome == "slow_down":
            raise SlowDownError(f"Polling too fast; wait {found.row.interval} seconds between requests")
        if found.outcome == "denied":
            raise AccessDeniedError("The member denied the request")
        if found.outcome == "expired":
            raise ExpiredTokenError("The device code expired; start again")
        raise InvalidGrantError("The device code is invalid, already used or issued to another client")

    def _handle_replay(self, row):
        """A device code redeemed twice was stolen or is being replayed: revoke
        what it produced, as for authorization codes (OAuth 2.1 §4.1.3)."""
        session = self.server.db.session
        if row.grant_id:
            grant_store.revoke(session, row.grant_id, "device_code_replayed")
        audit.record(session, "device_code_replayed", ip=client_address(), client_id=row.client_id, subject=row.subject,
                     organization_id=row.organization_id, grant_id=row.grant_id)

    def create_token_response(self):
        request, server = self.request, self.server
        client, row = request.client, request.credential
        session = server.db.session
        audience = resources.narrow(
            request.payload.datalist.get("resource", []), list(row.resource or []), server.settings.audience
        )
        body = issuance.new_grant_response(
            server, client, grant_type=self.GRANT_TYPE, approved=row, audience=audience,
            attach=lambda grant_id: device_store.attach_grant(session, row.device_code_hash, grant_id),
        )
        return 200, body, self.TOKEN_RESPONSE_HEADER

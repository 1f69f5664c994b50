"""Find a presented token (access JWT or refresh token) for revocation and
introspection, whatever ``token_type_hint`` says (RFC 7009 §2.1, RFC 7662 §2.1)."""
from __future__ import annotations

from dataclasses import dataclass

from ...db import utcnow
from ...storage import grants as grant_store


@dataclass
class FoundToken:
    kind: str  # "access_token" | "refresh_token"
    client_id: str
    active: bool
    claims: dict | None = None  # access token claims
    row: object = None  # refresh token row

    def check_client(self, client):
        return client.client_id == self.client_id


def find(server, value: str, hint: str | None, kinds=("access_token", "refresh_token")) -> FoundToken | None:
    """The token among ``kinds``, the hinted kind tried first."""
    session = server.db.session
    order = ["refresh_token", "access_token"] if hint == "refresh_token" else ["access_token", "refresh_token"]
    for kind in (k for k in order if k in kinds):
        if kind == "access_token":
            claims = server.minter.decode(value, leeway=0)
            if claims is not None:
                active = not grant_store.access_token_revoked(session, claims.get("jti", ""))
                if active and claims.get("gid"):
                    active = grant_store.is_active(session, claims["gid"])
                if active and claims.get("gid"):
                    active = _member_active(server, claims.get("organization_id"), claims.get("sub"))
                return FoundToken("access_token", claims.get("client_id", ""), active, claims=claims)
        else:
            row = grant_store.find_refresh_token(session, value)
            if row is not None:
                now = utcnow()
                active = (
                    row.revoked_at is None and row.used_at is None and row.expires_at > now
                    and grant_store.is_active(session, row.grant_id)
                    and _member_active(server, row.organization_id, row.subject)
                )
                return FoundToken("refresh_token", row.client_id, active, row=row)
    return None


def _member_active(server, organization_id, subject) -> bool:
    """Tokens of a member removed in Stytch introspect inactive; when Stytch is
    unreachable and nothing is cached, the token is reported inactive (fail safe)."""
    from ...identity.gateway import IdentityUnavailable

    try:
        return server.member_active(organization_id, subject)
    except IdentityUnavailable:
        return False

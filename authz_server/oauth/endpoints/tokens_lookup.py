"""Find a presented token (access JWT or refresh token) for revocation and
introspection, whatever ``token_type_hint`` says (RFC 7009 §2.1, RFC 7662 §2.1).
Whether it is active is ``oauth.token_status``'s decision, asked only when
needed (revocation revokes inactive tokens too, without asking Stytch)."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from ...storage import grants as grant_store
from .. import token_status


@dataclass
class FoundToken:
    kind: str  # "access_token" | "refresh_token"
    client_id: str
    server: object
    claims: dict | None = None  # access token claims
    row: object = None  # refresh token row

    @cached_property
    def active(self) -> bool:
        if self.kind == "access_token":
            return token_status.access_token_active(self.server, self.claims)
        return token_status.refresh_token_active(self.server, self.row)

    def check_client(self, client):
        return client.client_id == self.client_id


def find(server, value: str, hint: str | None, kinds=("access_token", "refresh_token")) -> FoundToken | None:
    """The token among ``kinds``, the hinted kind tried first."""
    order = ["refresh_token", "access_token"] if hint == "refresh_token" else ["access_token", "refresh_token"]
    for kind in (k for k in order if k in kinds):
        if kind == "access_token":
            claims = token_status.decode(server, value)
            if claims is not None:
                return FoundToken("access_token", claims.get("client_id", ""), server, claims=claims)
        else:
            row = grant_store.find_refresh_token(server.db.session, value)
            if row is not None:
                return FoundToken("refresh_token", row.client_id, server, row=row)
    return None

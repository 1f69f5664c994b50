"""Whether a token is active: the one decision that userinfo, introspection and
revocation share, so that no endpoint accepts a token another one refuses.

An access token (our RFC 9068 JWT) is active when all of these hold:

- it is signed by one of our keys, typed ``at+jwt``, from our issuer, and not
  expired (no leeway: RFC 7662 §2.2 "active", OIDC Core §5.3.3);
- its ``jti`` is not on the revocation list (RFC 7009 §2.1);
- the client it was issued to still exists and is not disabled (the token
  endpoint refuses that client; its tokens must not outlive it, RFC 7592 §2.3);
- the grant behind it, for a member's token, is neither revoked nor expired;
- that member is still active in Stytch (``AuthzServer.member_active``, cached
  for AUTHZ_MEMBER_CHECK_SECONDS; when Stytch cannot answer and nothing is
  cached the token counts as inactive: fail safe). A client-credentials token
  has no grant and no member.

A refresh token is active when it is neither rotated (used), revoked nor
expired, and its grant and member are active.
"""
from __future__ import annotations

from ..clock import utcnow
from ..storage import grants as grant_store


def decode(server, value: str) -> dict | None:
    """The claims of a well-formed, unexpired access token of this server, active
    or not (revocation acts on those too); None for anything else."""
    return server.minter.decode(value, leeway=0)


def access_token_active(server, claims: dict) -> bool:
    """Whether the access token with these (``decode``d) claims is active."""
    session = server.db.session
    if grant_store.access_token_revoked(session, claims.get("jti", "")):
        return False
    if not server.clients.is_enabled(claims.get("client_id")):
        return False
    grant_id = claims.get("gid")
    if not grant_id:
        return True  # client_credentials: no grant, no member
    return grant_store.is_active(session, grant_id) and _member_active(
        server, claims.get("organization_id"), claims.get("sub"))


def active_access_token(server, value: str) -> dict | None:
    """The claims of ``value`` if it is an active access token, else None."""
    claims = decode(server, value)
    return claims if claims is not None and access_token_active(server, claims) else None


def refresh_token_active(server, row) -> bool:
    """Whether the refresh token stored as ``row`` is active."""
    return (
        row.revoked_at is None and row.used_at is None and row.expires_at > utcnow()
        and grant_store.is_active(server.db.session, row.grant_id)
        and _member_active(server, row.organization_id, row.subject)
    )


def _member_active(server, organization_id, subject) -> bool:
    from ..identity.gateway import IdentityUnavailable

    try:
        return server.member_active(organization_id, subject)
    except IdentityUnavailable:
        return False

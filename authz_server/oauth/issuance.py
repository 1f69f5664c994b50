"""Build the token response (RFC 6749 §5.1) for every grant."""
from __future__ import annotations

import datetime as dt

from ..sources import client_address
from ..storage import audit, clients as client_store, grants as grant_store
from . import claims as claim_rules
from . import scopes as scope_rules


def _epoch(t: dt.datetime) -> int:
    return int(t.timestamp())


def token_response(server, client, *, grant_type: str, subject: str, scope: str, audience: list[str],
                   organization_id=None, member_claims=None, auth_time=None, grant_id=None,
                   refresh_source=None, grant_expires_at=None, parent_hash=None, nonce=None,
                   id_token: bool = False, refresh_token: str | None = None) -> dict:
    """Mint the access token (and refresh and id tokens when asked), record the
    issuance in the audit log, and return the JSON body.

    With a ``refresh_source`` a refresh token is inserted (``refresh_token``:
    the value a rotation drew, else a new one); without, a ``refresh_token`` is
    one already issued, answered again to a replay inside the refresh grace
    window (the family keeps one live branch).

    ``expires_in`` is always sent and ``token_type`` is always ``Bearer``
    (docs/requirements.md: A6-40)."""
    settings = server.settings
    session = server.db.session
    at, at_claims = server.minter.access_token(
        client_id=client.client_id,
        subject=subject,
        scope=scope,
        audience=audience,
        grant_id=grant_id,
        auth_time=_epoch(auth_time) if auth_time else None,
        organization_id=organization_id,
    )
    body = {
        "access_token": at,
        "token_type": "Bearer",
        "expires_in": settings.access_token_ttl,
        "scope": scope,
    }
    if not scope:
        body.pop("scope")
    if refresh_source is not None:
        body["refresh_token"] = grant_store.new_refresh_token(
            session, refresh_source, grant_id=grant_id, grant_expires_at=grant_expires_at,
            idle_ttl=settings.refresh_token_idle_ttl, parent_hash=parent_hash, token=refresh_token,
        )
    elif refresh_token is not None:
        body["refresh_token"] = refresh_token  # already issued (a replay inside the grace window)
    if id_token and "openid" in scope_rules.split(scope):
        body["id_token"] = server.minter.id_token(
            client=client,
            subject=subject,
            auth_time=_epoch(auth_time),
            nonce=nonce,
            access_token=at,
            user_claims=claim_rules.id_token_claims(member_claims or {}, scope_rules.split(scope)),
        )
    # A dynamically registered client that got a token is no garbage (docs/requirements.md: C-14).
    if client_store.mark_used(session, client):
        server.clients.invalidate(client.client_id)
    audit.record(
        session, "token_issued", ip=client_address(),
        client_id=client.client_id, subject=subject, organization_id=organization_id,
        grant_id=grant_id, grant_type=grant_type, jti=at_claims["jti"],
        refresh_token="refresh_token" in body, id_token="id_token" in body,
        grace_replay=True if refresh_token is not None and refresh_source is None else None,
    )
    return body


def new_grant_response(server, client, *, grant_type: str, approved, audience: list[str], nonce=None,
                       attach=None) -> dict:
    """A new grant (refresh family) for what a member approved (an authorization
    code or a device authorization: both rows carry subject, organization,
    scope, resource, claims and auth_time), then the token response for it.
    ``attach(grant_id)`` links the approval to the grant, for replay revocation."""
    grant = grant_store.create(
        server.db.session,
        client_id=client.client_id,
        subject=approved.subject,
        organization_id=approved.organization_id,
        scope=approved.scope,
        resource=approved.resource,
        claims=approved.claims,
        auth_time=approved.auth_time,
        absolute_ttl=server.settings.refresh_token_absolute_ttl,
    )
    if attach is not None:
        attach(grant.id)
    return token_response(
        server, client,
        grant_type=grant_type,
        subject=approved.subject,
        scope=approved.scope,
        audience=audience,
        organization_id=approved.organization_id,
        member_claims=approved.claims,
        auth_time=approved.auth_time,
        grant_id=grant.id,
        refresh_source=grant if client.check_grant_type("refresh_token") else None,
        grant_expires_at=grant.expires_at,
        nonce=nonce,
        id_token=True,
    )

"""Client administration: create, update, disable, rotate the secret, delete.
Every change lands in the audit log; a secret is shown once and kept as a digest."""
from __future__ import annotations

from sqlalchemy import select

from ..db import utcnow
from ..models import Client, ClientType
from ..oauth import redirect_uris
from ..security import digest, new_id, new_secret
from . import audit

GRANT_TYPES = {"authorization_code", "refresh_token", "client_credentials"}


class ClientInputError(ValueError):
    """Invalid client metadata; the message says which field and why."""


def _check(redirects, grant_types, client_type: ClientType, auth_method):
    for uri in redirects:
        why = redirect_uris.validate_registration(uri)
        if why:
            raise ClientInputError(f"redirect URI {uri!r} {why}")
    unknown = set(grant_types) - GRANT_TYPES
    if unknown:
        raise ClientInputError(f"unsupported grant type(s): {', '.join(sorted(unknown))}")
    if "authorization_code" in grant_types and not redirects:
        raise ClientInputError("the authorization_code grant needs at least one redirect URI")
    if client_type.is_public and "client_credentials" in grant_types:
        raise ClientInputError("a public client cannot use client_credentials")
    if client_type.is_public and auth_method != "none":
        raise ClientInputError("a public client authenticates with 'none'")
    if not client_type.is_public and auth_method not in ("client_secret_basic", "client_secret_post"):
        raise ClientInputError("a confidential client authenticates with client_secret_basic or client_secret_post")


def create(session, *, name, client_type, redirect_uris_=(), scopes=(), grant_types=None, auth_method=None,
           logo_uri=None, client_uri=None, organization_id=None, post_logout_redirect_uris=(), actor="cli"):
    """Returns (client, secret or None)."""
    try:
        ctype = ClientType(client_type)
    except ValueError:
        raise ClientInputError(f"unknown client type {client_type!r}; use one of "
                               + ", ".join(t.value for t in ClientType)) from None
    if not name or len(name) > 200:
        raise ClientInputError("the name must have 1 to 200 characters")
    grant_types = list(grant_types or (["authorization_code", "refresh_token"]))
    auth_method = auth_method or ("none" if ctype.is_public else "client_secret_basic")
    _check(list(redirect_uris_), grant_types, ctype, auth_method)
    for uri in post_logout_redirect_uris:
        why = redirect_uris.validate_registration(uri)
        if why:
            raise ClientInputError(f"post-logout redirect URI {uri!r} {why}")
    secret = None if ctype.is_public else new_secret(32)
    client = Client(
        client_id=new_id("client-", 16),
        client_secret_hash=digest(secret) if secret else None,
        name=name,
        client_type=ctype.value,
        redirect_uris=list(redirect_uris_),
        post_logout_redirect_uris=list(post_logout_redirect_uris),
        scopes=list(dict.fromkeys(scopes)),
        grant_types=grant_types,
        token_endpoint_auth_method=auth_method,
        logo_uri=logo_uri,
        client_uri=client_uri,
        organization_id=organization_id,
    )
    session.add(client)
    audit.record(session, "client_created", client_id=client.client_id, actor=actor, client_type=ctype.value)
    return client, secret


def get(session, client_id) -> Client | None:
    return session.get(Client, client_id)


def all_clients(session) -> list[Client]:
    return list(session.scalars(select(Client).order_by(Client.created_at)).all())


def update(session, client: Client, *, actor="cli", **changes) -> Client:
    fields = {k: v for k, v in changes.items() if v is not None}
    redirects = fields.get("redirect_uris", client.redirect_uris)
    grant_types = fields.get("grant_types", client.grant_types)
    _check(list(redirects), list(grant_types), client.type, client.token_endpoint_auth_method)
    for k, v in fields.items():
        setattr(client, k, list(v) if isinstance(v, tuple) else v)
    if "name" in fields and (not client.name or len(client.name) > 200):
        raise ClientInputError("the name must have 1 to 200 characters")
    audit.record(session, "client_updated", client_id=client.client_id, actor=actor, fields=sorted(fields))
    return client


def set_disabled(session, client: Client, disabled: bool, actor="cli"):
    client.disabled_at = utcnow() if disabled else None
    audit.record(session, "client_disabled" if disabled else "client_enabled", client_id=client.client_id, actor=actor)


def rotate_secret(session, client: Client, actor="cli") -> str:
    if client.is_public:
        raise ClientInputError("a public client has no secret")
    secret = new_secret(32)
    client.client_secret_hash = digest(secret)
    client.secret_rotated_at = utcnow()
    audit.record(session, "client_secret_rotated", client_id=client.client_id, actor=actor)
    return secret


def delete(session, client: Client, actor="cli"):
    audit.record(session, "client_deleted", client_id=client.client_id, actor=actor)
    session.delete(client)

"""Client administration: create, update, disable, rotate the secret, delete.
Every change lands in the audit log; a secret is shown once and kept as a digest."""
from __future__ import annotations

import datetime as dt
import hmac

from sqlalchemy import select
from sqlalchemy import update as sql_update

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


# --- Dynamic registration (RFC 7591 / RFC 7592) --------------------------------
# Dynamic clients are always third-party (consent page); public when their
# method is "none". Their registration access token, like every secret, is kept
# only as a digest (DESIGN §2).

# How often a DCR client's last_used_at is refreshed: a coarse mark is enough
# for garbage collection and keeps the token endpoint's hot path at one extra
# UPDATE per client per day.
USE_MARK_INTERVAL = dt.timedelta(days=1)


def _apply(client: Client, meta) -> None:
    client.name = meta.client_name
    client.redirect_uris = list(meta.redirect_uris)
    client.post_logout_redirect_uris = list(meta.post_logout_redirect_uris)
    client.scopes = list(meta.scopes)
    client.grant_types = list(meta.grant_types)
    client.token_endpoint_auth_method = meta.token_endpoint_auth_method
    client.application_type = meta.application_type
    client.logo_uri = meta.logo_uri
    client.client_uri = meta.client_uri
    client.id_token_signed_response_alg = meta.id_token_signed_response_alg


def register_dynamic(session, meta, *, source: str):
    """Create a client from RFC 7591 metadata (``oauth.registration.dcr.Metadata``).
    Returns (client, secret or None, registration access token)."""
    secret = None if meta.is_public else new_secret(32)
    token = new_secret(32)
    client = Client(
        client_id=new_id("dcr-", 16),
        client_secret_hash=digest(secret) if secret else None,
        client_type=(ClientType.THIRD_PARTY_PUBLIC if meta.is_public else ClientType.THIRD_PARTY).value,
        registered_via="dcr",
        registration_access_token_hash=digest(token),
        registration_source=source,
        # Only public registrations are shared with an identical later one.
        registration_fingerprint=meta.fingerprint() if meta.is_public else None,
        require_auth_time=False,
    )
    _apply(client, meta)
    now = utcnow()
    client.created_at = client.updated_at = now
    session.add(client)
    audit.record(session, "client_registered", client_id=client.client_id, actor="dcr",
                 client_type=client.client_type, auth_method=meta.token_endpoint_auth_method)
    return client, secret, token


def find_duplicate(session, source: str, fingerprint: str) -> Client | None:
    """An active public DCR client registered from ``source`` with identical metadata."""
    return session.scalars(
        select(Client).where(
            Client.registration_source == source,
            Client.registration_fingerprint == fingerprint,
            Client.registered_via == "dcr",
            Client.disabled_at.is_(None),
        ).order_by(Client.created_at).limit(1)
    ).first()


def share_duplicate(session, client: Client) -> None:
    """Hand an existing public client to an identical registration.

    A shared client belongs to no single registrant, so nobody may manage it any
    more: its registration access token is revoked (otherwise whoever registered
    first could later add a redirect URI to a client others already consented
    to). Its garbage-collection clock restarts (updated_at)."""
    client.registration_access_token_hash = None
    client.updated_at = utcnow()
    audit.record(session, "client_registered", client_id=client.client_id, actor="dcr",
                 client_type=client.client_type, deduplicated=True)


def verify_registration_token(client: Client | None, token: str | None) -> bool:
    if client is None or not token or not client.registration_access_token_hash or client.registered_via != "dcr":
        return False
    return hmac.compare_digest(digest(token), client.registration_access_token_hash)


def reissue_registration_token(client: Client) -> str:
    """RFC 7592 §3: every client information response carries the registration
    access token, and only its digest is kept, so each read or update issues a
    new one (RFC 7592 §2.1/§2.2 allow it; the client must use the new one)."""
    token = new_secret(32)
    client.registration_access_token_hash = digest(token)
    return token


def update_dynamic(session, client: Client, meta) -> Client:
    """RFC 7592 §2.2: replace the metadata. The client is then no longer an
    anonymous registration that an identical one could share."""
    _apply(client, meta)
    client.client_type = (ClientType.THIRD_PARTY_PUBLIC if meta.is_public else ClientType.THIRD_PARTY).value
    client.registration_fingerprint = None
    client.updated_at = utcnow()
    audit.record(session, "client_updated", client_id=client.client_id, actor="dcr", fields=["metadata"])
    return client


def mark_used(session, client) -> bool:
    """Note that a DCR client got a token (at most once per USE_MARK_INTERVAL);
    True when a row was written. ``client`` is the cached OAuthClient."""
    if getattr(client, "registered_via", "admin") != "dcr":
        return False
    now = utcnow()
    if client.last_used_at is not None and now - client.last_used_at < USE_MARK_INTERVAL:
        return False
    session.execute(
        sql_update(Client).where(Client.client_id == client.client_id)
        .values(last_used_at=now).execution_options(synchronize_session=False)
    )
    return True


def collect_garbage(session, *, ttl_days: int, dry_run: bool = False, now=None) -> list[str]:
    """Delete DCR clients that never got a token and were registered (or last
    re-registered, or updated) more than ``ttl_days`` ago (spec-checklist item 77,
    C-14). Admin clients are never touched. Returns the client ids."""
    if ttl_days <= 0:
        return []
    cutoff = (now or utcnow()) - dt.timedelta(days=ttl_days)
    rows = list(session.scalars(
        select(Client).where(
            Client.registered_via == "dcr",
            Client.last_used_at.is_(None),
            Client.updated_at < cutoff,
        ).order_by(Client.created_at)
    ).all())
    if not dry_run:
        for client in rows:
            delete(session, client, actor="gc")
    return [c.client_id for c in rows]

"""Client administration: create, update, disable, rotate the secret, delete.
Every change lands in the audit log; a secret is shown once and kept as a digest."""
from __future__ import annotations

import datetime as dt
import hmac
from dataclasses import dataclass, field

from sqlalchemy import Text, and_, cast, func, select
from sqlalchemy import delete as sql_delete
from sqlalchemy import update as sql_update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from ..clock import utcnow
from ..models import AuthorizationCode, Client, ClientType, Grant, RefreshToken, RegisteredVia
from ..rules import redirect_uris as redirect_rules
from ..rules.resource_uris import UnknownResource, registered
from ..security import digest, new_id, new_secret
from . import audit
from . import resources as resource_store

# The device grant is named by its URN (RFC 8628 §3.4), spelled out: storage does not import Authlib.
DEVICE_CODE_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"
GRANT_TYPES = {"authorization_code", "refresh_token", "client_credentials", DEVICE_CODE_GRANT_TYPE}


class ClientInputError(ValueError):
    """Invalid client metadata; the message says which field and why."""


def _check(redirects, grant_types, client_type: ClientType, auth_method):
    for uri in redirects:
        why = redirect_rules.validate_registration(uri)
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


def _resources(session, values, what: str, default_audience: str | None) -> list[str]:
    """Canonical resource URIs for a client's permissions (oauth.permissions):
    each a registered resource, or the default audience, as at the endpoints."""
    try:
        return registered([v or "" for v in values], default_audience,
                          lambda canon: resource_store.exists(session, canon))
    except UnknownResource as e:
        raise ClientInputError(f"{what}: {e} (authz-server resources add)") from None


def create(session, *, name, client_type, redirect_uris=(), scopes=(), grant_types=None, auth_method=None,
           logo_uri=None, client_uri=None, organization_id=None, post_logout_redirect_uris=(), actor="cli",
           allowed_resources=(), introspection_resources=(), default_audience=None):
    """Returns (client, secret or None).

    ``allowed_resources``: the resources the client may ask for (none by default:
    with client_credentials it then gets only the default audience).
    ``introspection_resources``: the resources (or ``default_audience``) whose
    access tokens it may introspect (none by default: it may not introspect)."""
    try:
        ctype = ClientType(client_type)
    except ValueError:
        raise ClientInputError(f"unknown client type {client_type!r}; use one of "
                               + ", ".join(t.value for t in ClientType)) from None
    if not name or len(name) > 200:
        raise ClientInputError("the name must have 1 to 200 characters")
    grant_types = list(grant_types or (["authorization_code", "refresh_token"]))
    auth_method = auth_method or ("none" if ctype.is_public else "client_secret_basic")
    _check(list(redirect_uris), grant_types, ctype, auth_method)
    for uri in post_logout_redirect_uris:
        why = redirect_rules.validate_registration(uri)
        if why:
            raise ClientInputError(f"post-logout redirect URI {uri!r} {why}")
    allowed = _resources(session, allowed_resources, "resource", default_audience)
    introspects = _resources(session, introspection_resources, "introspection resource", default_audience)
    if introspects and ctype.is_public:
        raise ClientInputError("a public client cannot introspect (RFC 7662 section 4: it cannot authenticate)")
    secret = None if ctype.is_public else new_secret(32)
    client = Client(
        client_id=new_id("client-", 16),
        client_secret_hash=digest(secret) if secret else None,
        name=name,
        client_type=ctype.value,
        redirect_uris=list(redirect_uris),
        post_logout_redirect_uris=list(post_logout_redirect_uris),
        scopes=list(dict.fromkeys(scopes)),
        grant_types=grant_types,
        token_endpoint_auth_method=auth_method,
        logo_uri=logo_uri,
        client_uri=client_uri,
        organization_id=organization_id,
        allowed_resources=allowed,
        introspection_resources=introspects,
    )
    session.add(client)
    audit.record(session, "client_created", client_id=client.client_id, actor=actor, client_type=ctype.value)
    return client, secret


def get(session, client_id) -> Client | None:
    return session.get(Client, client_id)


def is_enabled(session, client_id: str) -> bool:
    """Whether a client row exists and is not disabled (one primary-key read)."""
    row = session.execute(select(Client.disabled_at).where(Client.client_id == client_id)).first()
    return row is not None and row.disabled_at is None


def all_clients(session) -> list[Client]:
    return list(session.scalars(select(Client).order_by(Client.created_at)).all())


def update(session, client: Client, *, actor="cli", default_audience=None, **changes) -> Client:
    """Change the given fields (None: unchanged; an empty list empties a list)."""
    fields = {k: v for k, v in changes.items() if v is not None}
    redirects = fields.get("redirect_uris", client.redirect_uris)
    grant_types = fields.get("grant_types", client.grant_types)
    _check(list(redirects), list(grant_types), client.type, client.token_endpoint_auth_method)
    if "allowed_resources" in fields:
        fields["allowed_resources"] = _resources(session, fields["allowed_resources"], "resource", default_audience)
    if "introspection_resources" in fields:
        fields["introspection_resources"] = _resources(session, fields["introspection_resources"],
                                                       "introspection resource", default_audience)
        if fields["introspection_resources"] and client.is_public:
            raise ClientInputError("a public client cannot introspect (RFC 7662 section 4: it cannot authenticate)")
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
# only as a digest (docs/architecture.md#secrets-at-rest).

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


def register_dynamic(session, meta, *, source: str, ip: str | None = None):
    """Create a client from RFC 7591 metadata (``oauth.registration.dcr.Metadata``).
    Returns (client, secret or None, registration access token). ``ip``, here
    and below: the registrant's address, for the audit log."""
    secret = None if meta.is_public else new_secret(32)
    token = new_secret(32)
    client = Client(
        client_id=new_id("dcr-", 16),
        client_secret_hash=digest(secret) if secret else None,
        client_type=(ClientType.THIRD_PARTY_PUBLIC if meta.is_public else ClientType.THIRD_PARTY).value,
        registered_via=RegisteredVia.DCR,
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
    audit.record(session, "client_registered", ip=ip, client_id=client.client_id, actor="dcr",
                 client_type=client.client_type, auth_method=meta.token_endpoint_auth_method)
    return client, secret, token


def find_duplicate(session, source: str, fingerprint: str) -> Client | None:
    """An active public DCR client registered from ``source`` with identical metadata."""
    return session.scalars(
        select(Client).where(
            Client.registration_source == source,
            Client.registration_fingerprint == fingerprint,
            Client.registered_via == RegisteredVia.DCR,
            Client.disabled_at.is_(None),
        ).order_by(Client.created_at).limit(1)
    ).first()


def share_duplicate(session, client: Client, fingerprint: str, ip: str | None = None) -> bool:
    """Hand an existing public client to an identical registration; False when
    it is no longer that registration (then register a new client).

    One UPDATE, which re-checks that the client still has the same metadata and
    is enabled: an RFC 7592 update clears the fingerprint in its own guarded
    UPDATE (``update_dynamic``), so whichever commits first wins on Postgres'
    row lock and the other sees it. A shared client belongs to no single
    registrant: it is marked shared, and RFC 7592 updates and deletion are
    refused from then on (whoever registered first could otherwise add a
    redirect URI to a client others already consented to, or delete it under
    them). The first registrant's registration access token keeps working for
    reading it (RFC 7592 §2.1). The garbage-collection clock restarts (updated_at)."""
    shared = session.execute(
        sql_update(Client)
        .where(Client.client_id == client.client_id, Client.registration_fingerprint == fingerprint,
               Client.disabled_at.is_(None))
        .values(registration_shared=True, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    if shared:
        audit.record(session, "client_registered", ip=ip, client_id=client.client_id, actor="dcr",
                     client_type=client.client_type, deduplicated=True)
    return bool(shared)


def verify_registration_token(client: Client | None, token: str | None) -> bool:
    if client is None or not token or not client.registration_access_token_hash or client.registered_via != RegisteredVia.DCR:
        return False
    return hmac.compare_digest(digest(token), client.registration_access_token_hash)


def reissue_registration_token(client: Client) -> str:
    """RFC 7592 §3: every client information response carries the registration
    access token, and only its digest is kept, so each read or update issues a
    new one (RFC 7592 §2.1/§2.2 allow it; the client must use the new one)."""
    token = new_secret(32)
    client.registration_access_token_hash = digest(token)
    return token


def update_dynamic(session, client: Client, meta, ip: str | None = None) -> bool:
    """RFC 7592 §2.2: replace the metadata; False (nothing changed) when the
    client is shared (``share_duplicate``). The client is then no longer an
    anonymous registration that an identical one could share: one guarded
    UPDATE clears its fingerprint first, and holds the row until commit."""
    claimed = session.execute(
        sql_update(Client)
        .where(Client.client_id == client.client_id, Client.registration_shared.is_(False))
        .values(registration_fingerprint=None, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    if not claimed:
        return False
    _apply(client, meta)
    client.client_type = (ClientType.THIRD_PARTY_PUBLIC if meta.is_public else ClientType.THIRD_PARTY).value
    client.registration_fingerprint = None
    client.updated_at = utcnow()
    audit.record(session, "client_updated", ip=ip, client_id=client.client_id, actor="dcr", fields=["metadata"])
    return True


def delete_dynamic(session, client: Client, ip: str | None = None) -> bool:
    """RFC 7592 §2.3: delete the client, with its grants, refresh tokens, codes
    and consents (ON DELETE CASCADE), in one DELETE that refuses a shared client
    (False: nothing deleted)."""
    client_id = client.client_id
    deleted = session.execute(
        sql_delete(Client).where(Client.client_id == client_id, Client.registration_shared.is_(False))
        .execution_options(synchronize_session=False)
    ).rowcount
    if deleted:
        session.expunge(client)
        audit.record(session, "client_deleted", ip=ip, client_id=client_id, actor="dcr")
    return bool(deleted)


def store_cimd(engine, doc) -> Client | None:
    """Upsert the row of a fetched client metadata document
    (``oauth.registration.cimd.Document``), keyed by its URL, in a session of
    its own on ``engine`` so the request's unit of work is not committed with
    it. None when the URL names an admin row, or after two lost races."""
    for _ in range(2):
        with Session(engine, expire_on_commit=False) as s:
            row = s.get(Client, doc.client_id)
            if row is not None and row.registered_via != RegisteredVia.CIMD:
                return None  # an admin row with a URL id is not ours to rewrite
            if row is None:
                row = Client(client_id=doc.client_id, registered_via=RegisteredVia.CIMD, require_auth_time=False,
                             scopes=[], created_at=utcnow())
                s.add(row)
            row.client_type = (ClientType.THIRD_PARTY_PUBLIC if doc.token_endpoint_auth_method == "none"
                               else ClientType.THIRD_PARTY).value
            row.name = doc.client_name
            row.redirect_uris = list(doc.redirect_uris)
            row.post_logout_redirect_uris = list(doc.post_logout_redirect_uris)
            row.grant_types = list(doc.grant_types)
            row.token_endpoint_auth_method = doc.token_endpoint_auth_method
            row.logo_uri = doc.logo_uri
            row.client_uri = doc.client_uri
            row.application_type = None
            # For a CIMD row, updated_at is when its document was last
            # fetched: `clients gc` deletes rows without grants whose
            # document nobody fetched for AUTHZ_CIMD_CLIENT_TTL_DAYS, which
            # is longer than any cache lifetime (MAX_CACHE), so no process
            # still holds the client of a row it deletes.
            row.updated_at = utcnow()
            try:
                s.commit()
                return row
            except (IntegrityError, StaleDataError):
                # A concurrent first fetch inserted it (update instead), or
                # `clients gc` deleted it since we read it (insert again).
                s.rollback()
    return None


def mark_used(session, client) -> bool:
    """Note that a DCR client got a token (at most once per USE_MARK_INTERVAL);
    True when a row was written. ``client`` is the cached OAuthClient."""
    if getattr(client, "registered_via", RegisteredVia.ADMIN) != RegisteredVia.DCR:
        return False
    now = utcnow()
    if client.last_used_at is not None and now - client.last_used_at < USE_MARK_INTERVAL:
        return False
    session.execute(
        sql_update(Client).where(Client.client_id == client.client_id)
        .values(last_used_at=now).execution_options(synchronize_session=False)
    )
    return True


@dataclass(frozen=True)
class Garbage:
    """What `clients gc` deleted (or, in a dry run, would delete), by rule."""

    never_used: list[str] = field(default_factory=list)
    idle: list[str] = field(default_factory=list)
    cimd: list[str] = field(default_factory=list)


def _never_used(cutoff):
    """Never got a token and registered (or re-registered, or updated) before ``cutoff``."""
    return and_(Client.registered_via == RegisteredVia.DCR, Client.last_used_at.is_(None), Client.updated_at < cutoff)


def _pending_code(now):
    """The client's authorization codes still waiting to be redeemed (a member
    approving it right now; issuing a code does not touch last_used_at)."""
    return select(AuthorizationCode.code_hash).where(
        AuthorizationCode.client_id == Client.client_id, AuthorizationCode.used_at.is_(None),
        AuthorizationCode.expires_at > now)


def _idle(cutoff, now):
    """Got tokens once, but nothing is left: no token issued and no RFC 7592
    read or update (updated_at) since ``cutoff``, every grant expired or
    revoked, no refresh token still unexpired and unrevoked (checked on its own:
    a refresh racing a family revocation can leave one unrevoked row, see
    storage.grants.use_refresh_token), and no authorization code waiting to be
    redeemed (a member approving the client right now; issuing a code does not
    touch last_used_at)."""
    live_grant = select(Grant.id).where(
        Grant.client_id == Client.client_id, Grant.revoked_at.is_(None), Grant.expires_at > now)
    live_refresh_token = select(RefreshToken.token_hash).where(
        RefreshToken.client_id == Client.client_id, RefreshToken.revoked_at.is_(None),
        RefreshToken.expires_at > now)
    # Only DCR clients. Admin clients were created on purpose by an operator
    # and are removed only by one (`clients delete`). CIMD rows have a rule of
    # their own (_unused_cimd): their last_used_at is never written (mark_used).
    return and_(
        Client.registered_via == RegisteredVia.DCR,
        Client.last_used_at < cutoff,
        Client.updated_at < cutoff,
        ~live_grant.exists(),
        ~live_refresh_token.exists(),
        ~_pending_code(now).exists(),
    )


def _unused_cimd(cutoff, now):
    """A client ID metadata document's row that never got a grant, has no
    authorization code waiting to be redeemed, and whose document was last
    fetched (updated_at, see registration.cimd) before ``cutoff``. Anyone can
    make the server create such rows, one per URL they publish; deleting one
    costs nothing but a fetch, should the client come back. Rows with grants
    stay: they are clients members approved, kept with their history. So do
    rows an operator acted on: a disabled one (deleting it would lift the block,
    the next fetch storing the client anew, enabled) and one given resources or
    introspection rights."""
    any_grant = select(Grant.id).where(Grant.client_id == Client.client_id)
    return and_(
        Client.registered_via == RegisteredVia.CIMD,
        Client.updated_at < cutoff,
        Client.disabled_at.is_(None),
        _empty_list(Client.allowed_resources),
        _empty_list(Client.introspection_resources),
        ~any_grant.exists(),
        ~_pending_code(now).exists(),
    )


def _empty_list(column):
    # A JSON list column holding nothing, on SQLite and Postgres alike (both keep the JSON text).
    return func.coalesce(cast(column, Text), "[]").in_(("[]", "null"))


def _collect(session, condition, rule: str, dry_run: bool) -> list[str]:
    """One DELETE … RETURNING per rule: the conditions are checked and the rows
    removed in the same statement, never on facts read earlier. A client that
    gets a token meanwhile is kept: issuing one updates its row (mark_used), and
    on Postgres the DELETE waits for that transaction and re-checks the updated
    row (READ COMMITTED). What is left is an authorization issuing a code for
    the client in the very same instant: it fails on the foreign key (503) or
    its code goes with the client (invalid_client at redemption), and the
    client registers again, as it must for any deleted registration.
    Codes, grants, refresh tokens and consents go with the client (ON DELETE
    CASCADE; SQLite enforces it with PRAGMA foreign_keys, see db.py)."""
    if dry_run:
        return list(session.scalars(select(Client.client_id).where(condition).order_by(Client.created_at)))
    ids = sorted(session.scalars(
        sql_delete(Client).where(condition).returning(Client.client_id)
        .execution_options(synchronize_session=False)
    ).all())
    for client_id in ids:
        audit.record(session, "client_deleted", client_id=client_id, actor="gc", rule=rule)
    return ids


def collect_garbage(session, *, ttl_days: int, idle_days: int = 0, cimd_ttl_days: int = 0, dry_run: bool = False,
                    now=None) -> Garbage:
    """Delete clients that are garbage (docs/requirements.md: A14-77, C-14), by
    three rules, in the caller's transaction:

    - never used: a dynamically registered client with no token ever,
      registered (or last re-registered, or updated) more than ``ttl_days``
      ago (AUTHZ_DCR_CLIENT_TTL_DAYS, 7);
    - idle: a dynamically registered client with every grant expired or
      revoked, no live refresh token, and no token issued nor registration
      touched for ``idle_days`` (AUTHZ_DCR_CLIENT_IDLE_DAYS, 90);
    - cimd: a client ID metadata document's row without grants, its document
      not fetched for ``cimd_ttl_days`` (AUTHZ_CIMD_CLIENT_TTL_DAYS, 7).

    0 days switches a rule off. Admin clients are never touched (see _idle).
    Each deletion is audited (client_deleted, actor gc, the rule)."""
    now = now or utcnow()
    never_used = idle = cimd = []
    if ttl_days > 0:
        never_used = _collect(session, _never_used(now - dt.timedelta(days=ttl_days)), "never_used", dry_run)
    if idle_days > 0:
        idle = _collect(session, _idle(now - dt.timedelta(days=idle_days), now), "idle", dry_run)
    if cimd_ttl_days > 0:
        cimd = _collect(session, _unused_cimd(now - dt.timedelta(days=cimd_ttl_days), now), "cimd_unused", dry_run)
    return Garbage(never_used, idle, cimd)

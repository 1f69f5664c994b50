"""Grants (refresh-token families) and refresh-token rotation."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import select, update

from ..clock import utcnow
from ..models import Grant, RefreshToken, RevokedAccessToken
from ..security import digest, new_id, new_secret


def create(session, *, client_id, subject, organization_id, scope, resource, claims, auth_time,
           absolute_ttl: int) -> Grant:
    now = utcnow()
    grant = Grant(
        id=new_id("g", 16),
        client_id=client_id,
        subject=subject,
        organization_id=organization_id,
        scope=scope,
        resource=list(resource or []),
        claims=dict(claims or {}),
        auth_time=auth_time,
        created_at=now,
        expires_at=now + dt.timedelta(seconds=absolute_ttl),
    )
    session.add(grant)
    return grant


def new_refresh_token(session, source, *, grant_id: str, grant_expires_at, idle_ttl: int,
                      parent_hash: str | None = None, token: str | None = None) -> str:
    """Insert a refresh token for the grant; ``source`` is the grant or the parent
    token row, whose grant fields are copied (see RefreshToken). ``token`` is the
    value a rotation already drew (and kept on the parent, see
    use_refresh_token); otherwise a new one is drawn."""
    token = token or new_secret(32)
    now = utcnow()
    expires = min(now + dt.timedelta(seconds=idle_ttl), grant_expires_at)
    session.add(
        RefreshToken(
            token_hash=digest(token),
            grant_id=grant_id,
            parent_hash=parent_hash,
            client_id=source.client_id,
            subject=source.subject,
            organization_id=source.organization_id,
            scope=source.scope,
            resource=list(source.resource or []),
            claims=dict(source.claims or {}),
            auth_time=source.auth_time,
            created_at=now,
            expires_at=expires,
            grant_expires_at=grant_expires_at,
        )
    )
    return token


@dataclass
class Rotation:
    """What presenting a refresh token found: ``token`` (its row) and ``child``,
    the refresh token to answer with: drawn by this rotation (the caller inserts
    it), or, with ``grace``, the one the first use issued (a replay inside the
    grace window: insert nothing); or nothing, with ``reuse_detected`` when the
    family must be revoked."""

    token: RefreshToken | None
    grace: bool = False
    reuse_detected: bool = False
    child: str | None = None


def use_refresh_token(session, token: str, client_id: str, grace_seconds: int, kek: Fernet) -> Rotation:
    """Consume a refresh token for rotation (OAuth 2.1 §4.3.1, RFC 9700 §4.14).

    The common case is one UPDATE … RETURNING, which also keeps the child it
    draws on this row, encrypted with the key-encryption key ``kek``; the
    caller inserts the child (new_refresh_token) in the same transaction. A token already used less than ``grace_seconds`` ago is a
    benign race of parallel refreshes or a lost response: it is answered with
    the child its first use issued, never a new one, so a family has one live
    branch (RFC 9700 §4.14.2: otherwise a thief replaying inside the window
    would get a branch of their own). One used earlier is reuse: the caller
    revokes the family. On Postgres, a concurrent refresh of the same token
    waits on the row lock of the first UPDATE, and once that transaction
    committed reads its used_at and its child together.

    The grant itself must still be unrevoked: a refresh racing a family
    revocation (reuse detected, RFC 9700 §4.14.2) can insert its child token
    after the revoking UPDATE took its snapshot, so that child's row is never
    marked revoked; checking the grant in the same statement keeps it dead.
    """
    if not isinstance(token, str) or not token or len(token) > 512:
        return Rotation(None)
    h = digest(token)
    now = utcnow()
    child = new_secret(32)
    row = session.execute(
        update(RefreshToken)
        .where(
            RefreshToken.token_hash == h,
            RefreshToken.client_id == client_id,
            RefreshToken.used_at.is_(None),
            RefreshToken.revoked_at.is_(None),
            RefreshToken.expires_at > now,
            select(Grant.id).where(Grant.id == RefreshToken.grant_id, Grant.revoked_at.is_(None)).exists(),
        )
        .values(used_at=now, child_token_encrypted=kek.encrypt(child.encode()).decode())
        .returning(RefreshToken)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    if row is not None:
        _forget_children(session, now, grace_seconds)
        return Rotation(row, child=child)
    old = session.scalar(select(RefreshToken).where(RefreshToken.token_hash == h, RefreshToken.client_id == client_id))
    if old is None or old.revoked_at is not None or old.used_at is None:
        return Rotation(None)  # unknown, revoked or expired
    if now - old.used_at <= dt.timedelta(seconds=grace_seconds) and old.expires_at > now:
        if not is_active(session, old.grant_id):
            return Rotation(None)  # the family was revoked meanwhile (see above)
        child = _unseal(kek, old.child_token_encrypted)
        if child is None:
            # Rotated before the child was kept (an older release): no second
            # branch either; the client keeps the answer it already got.
            return Rotation(None)
        return Rotation(old, grace=True, child=child)
    return Rotation(None, reuse_detected=True)


def _unseal(kek: Fernet, sealed: str | None) -> str | None:
    if not sealed:
        return None
    try:
        return kek.decrypt(sealed.encode()).decode()
    except InvalidToken:
        return None


# When this process last swept kept children (see _forget_children).
_last_sweep: list = [None]


def _forget_children(session, now, grace_seconds: int) -> None:
    """Clear, in passing, the kept children whose grace window is over: nothing
    will answer with them any more, and a family that stopped refreshing must
    not keep one for good. At most once per window per process, so a refresh
    costs no extra statement in the common case: a child is gone within a
    window after its own closed. The partial index ix_refresh_tokens_child_kept
    holds only the tokens used lately, so this reads a few rows. Rows another
    transaction holds are skipped (Postgres SKIP LOCKED), never waited for, so
    this cannot deadlock with a rotation or a family revocation."""
    last = _last_sweep[0]
    if last is not None and 0 <= (now - last).total_seconds() < max(grace_seconds, 1):
        return
    _last_sweep[0] = now
    stale = (
        select(RefreshToken.token_hash)
        .where(RefreshToken.child_token_encrypted.is_not(None),
               RefreshToken.used_at < now - dt.timedelta(seconds=grace_seconds))
        .limit(500)
        .with_for_update(skip_locked=True)
    )
    session.execute(
        update(RefreshToken).where(RefreshToken.token_hash.in_(stale))
        .values(child_token_encrypted=None).execution_options(synchronize_session=False)
    )


def find_refresh_token(session, token: str) -> RefreshToken | None:
    if not isinstance(token, str) or not token or len(token) > 512:
        return None
    return session.get(RefreshToken, digest(token))


def revoke(session, grant_id: str, reason: str) -> bool:
    """Revoke a grant and every refresh token of its family, in one transaction."""
    now = utcnow()
    n = session.execute(
        update(Grant).where(Grant.id == grant_id, Grant.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason).execution_options(synchronize_session=False)
    ).rowcount
    session.execute(
        update(RefreshToken).where(RefreshToken.grant_id == grant_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now, child_token_encrypted=None).execution_options(synchronize_session=False)
    )
    return bool(n)


def get(session, grant_id: str) -> Grant | None:
    return session.get(Grant, grant_id)


def is_active(session, grant_id: str) -> bool:
    row = session.execute(select(Grant.revoked_at, Grant.expires_at).where(Grant.id == grant_id)).first()
    return row is not None and row.revoked_at is None and row.expires_at > utcnow()


def revoke_access_token(session, jti: str, exp: int) -> None:
    """List the token until it expires. One INSERT that does nothing when the
    jti is listed already: two revocations of one token at once both succeed
    (RFC 7009 §2.2), where a read-then-insert would fail the second."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    session.execute(
        insert(RevokedAccessToken)
        .values(jti=jti, expires_at=dt.datetime.fromtimestamp(exp, dt.timezone.utc))
        .on_conflict_do_nothing(index_elements=["jti"])
    )


def access_token_revoked(session, jti: str) -> bool:
    return session.get(RevokedAccessToken, jti) is not None

"""Authorization codes: issue, and redeem exactly once."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select, update

from ..clock import utcnow
from ..models import AuthorizationCode
from ..security import digest, new_secret


def issue(session, *, ttl: int, **fields) -> str:
    code = new_secret(32)
    now = utcnow()
    session.add(
        AuthorizationCode(code_hash=digest(code), created_at=now, expires_at=now + dt.timedelta(seconds=ttl), **fields)
    )
    return code


@dataclass
class Redemption:
    code: AuthorizationCode | None
    replayed: AuthorizationCode | None = None


def redeem(session, code: str, client_id: str) -> Redemption:
    """Mark the code used in one statement (OAuth 2.1 §4.1.3): of two concurrent
    redemptions exactly one sees ``used_at IS NULL``. The marking commits with the
    request's transaction, so a request that fails later (bad verifier) leaves the
    code unused."""
    if not isinstance(code, str) or not code or len(code) > 512:
        return Redemption(None)
    h = digest(code)
    now = utcnow()
    row = session.execute(
        update(AuthorizationCode)
        .where(
            AuthorizationCode.code_hash == h,
            AuthorizationCode.client_id == client_id,
            AuthorizationCode.used_at.is_(None),
            AuthorizationCode.expires_at > now,
        )
        .values(used_at=now)
        .returning(AuthorizationCode)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    if row is not None:
        return Redemption(row)
    old = session.scalar(
        select(AuthorizationCode).where(AuthorizationCode.code_hash == h, AuthorizationCode.client_id == client_id)
    )
    if old is not None and old.used_at is not None:
        return Redemption(None, replayed=old)
    return Redemption(None)


def attach_grant(session, code_hash: str, grant_id: str) -> None:
    session.execute(
        update(AuthorizationCode).where(AuthorizationCode.code_hash == code_hash).values(grant_id=grant_id)
        .execution_options(synchronize_session=False)
    )


def nonce_used(session, client_id: str, nonce: str) -> bool:
    """OIDC Core §3.1.3.6 / §15.5.2: a nonce is accepted once per client."""
    return session.scalar(
        select(AuthorizationCode.code_hash).where(
            AuthorizationCode.client_id == client_id, AuthorizationCode.nonce == nonce
        ).limit(1)
    ) is not None

"""The replay memory of client assertions in the database (used when no Redis
is configured, or when it does not answer): see oauth.assertion_replay."""
from __future__ import annotations

from sqlalchemy import delete, insert
from sqlalchemy.exc import IntegrityError

from ..models import UsedClientAssertion


def first_use(session, key_hash: str, expires_at, now) -> bool:
    """Record an assertion until ``expires_at``; False when it is already
    recorded (a replay). One INSERT decides, on the primary key, so two nodes
    given the same assertion at once cannot both accept it. Expired rows are
    purged first, in passing: that keeps the table small, and a digest whose
    assertion expired is free again. Commits (or rolls back) the session."""
    session.execute(delete(UsedClientAssertion).where(UsedClientAssertion.expires_at <= now))
    try:
        session.execute(insert(UsedClientAssertion).values(key_hash=key_hash, expires_at=expires_at))
        session.commit()
    except IntegrityError:
        session.rollback()
        return False
    return True

"""Member sessions ended by a logout: a copy of the session cookie taken before
the logout must not sign anyone in afterwards. Only digests of the session ids
are stored."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from ..clock import utcnow
from ..models import EndedMemberSession
from ..security import digest


def end(session, session_id: str, cookie_lifetime: dt.timedelta) -> None:
    """Record ``session_id`` as ended until no cookie carrying it can still be
    valid (its signature is accepted for ``cookie_lifetime`` after it was issued)."""
    now = utcnow()
    # Expired rows go in passing, so the table stays small without a cron job.
    session.execute(delete(EndedMemberSession).where(EndedMemberSession.expires_at < now)
                    .execution_options(synchronize_session=False))
    try:
        with session.begin_nested():
            session.add(EndedMemberSession(session_id_hash=digest(session_id), expires_at=now + cookie_lifetime))
    except IntegrityError:
        pass  # two copies of the cookie logged out at once: ended either way


def is_ended(session, session_id: str) -> bool:
    """One primary-key lookup."""
    return session.get(EndedMemberSession, digest(session_id)) is not None

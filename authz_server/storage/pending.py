"""Authorization requests parked while the member logs in or decides.

Each is bound to the browser that parked it (the digest of a random value in its
signed session cookie): a ``pending`` id opened in another browser is not found,
so nobody can resume, or make a victim resume, someone else's request.
"""
from __future__ import annotations

import datetime as dt
import hmac

from sqlalchemy import delete

from ..clock import utcnow
from ..models import PendingAuthorization
from ..security import digest, new_id


def park(session, params: dict, ttl: int, browser: str) -> PendingAuthorization:
    """Park ``params`` for the browser whose binding value is ``browser``."""
    now = utcnow()
    row = PendingAuthorization(id=new_id("p", 24), params=params, browser_hash=digest(browser), created_at=now,
                               expires_at=now + dt.timedelta(seconds=ttl))
    session.add(row)
    # Expired rows go in passing, so the table stays small without a cron job.
    session.execute(delete(PendingAuthorization).where(PendingAuthorization.expires_at < now)
                    .execution_options(synchronize_session=False))
    return row


def load(session, pending_id, browser: str | None) -> PendingAuthorization | None:
    """The live request ``pending_id`` if the browser with binding value
    ``browser`` parked it; otherwise None."""
    if not isinstance(pending_id, str) or not pending_id or len(pending_id) > 64 or not browser:
        return None
    row = session.get(PendingAuthorization, pending_id)
    if row is None or row.expires_at <= utcnow() or not hmac.compare_digest(row.browser_hash, digest(browser)):
        return None
    return row


def finish(session, row: PendingAuthorization) -> None:
    session.delete(row)

"""Authorization requests parked while the member logs in or decides."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import delete

from ..db import utcnow
from ..models import PendingAuthorization
from ..security import new_id


def park(session, params: dict, ttl: int) -> PendingAuthorization:
    now = utcnow()
    row = PendingAuthorization(id=new_id("p", 24), params=params, created_at=now,
                               expires_at=now + dt.timedelta(seconds=ttl))
    session.add(row)
    # Expired rows go in passing, so the table stays small without a cron job.
    session.execute(delete(PendingAuthorization).where(PendingAuthorization.expires_at < now)
                    .execution_options(synchronize_session=False))
    return row


def load(session, pending_id) -> PendingAuthorization | None:
    if not isinstance(pending_id, str) or not pending_id or len(pending_id) > 64:
        return None
    row = session.get(PendingAuthorization, pending_id)
    if row is None or row.expires_at <= utcnow():
        return None
    return row


def finish(session, row: PendingAuthorization) -> None:
    session.delete(row)

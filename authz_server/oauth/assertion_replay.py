"""One-time use of client assertions (RFC 7523 §3 item 7: "The JWT MAY contain
a jti ... The authorization server may ensure that JWTs are not replayed by
maintaining the set of used jti values for the length of time for which the
JWT would be considered valid").

The set is shared by every node: in Redis when ``REDIS_URL`` is set (SET NX
with the assertion's remaining lifetime as expiry), else in the database
(``used_client_assertions``, one INSERT on a primary key). A memory in each
process would let an assertion seen by one worker be replayed at another.
When Redis does not answer, the database decides instead: rate limits may
fail open, a replay check must not.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import math
import time

from sqlalchemy.orm import Session

from ..clock import utcnow
from ..storage import assertions

# Bounds how long one assertion is remembered (an assertion may claim any exp;
# this keeps the timestamp representable). Far beyond any sane lifetime.
MAX_MEMORY_SECONDS = 366 * 24 * 3600


class ReplayMemory:
    def __init__(self, db, store=None):
        self.db = db
        self.store = store  # ratelimit.RedisStore, or None

    def first_use(self, client_id: str, jti: str, until: float) -> bool:
        """True the first time (client_id, jti) is presented, False after that
        until ``until`` (epoch seconds: the assertion's exp plus the leeway)."""
        now = time.time()
        seconds = min(max(1, math.ceil(until - now)), MAX_MEMORY_SECONDS)
        # A digest: bounded keys whatever the client sends, and nothing of the
        # assertion kept in clear.
        key = hashlib.sha256(f"{client_id}\x00{jti}".encode("utf-8", "replace")).hexdigest()
        if self.store is not None:
            first = self.store.set_once("jti:" + key, seconds)
            if first is not None:
                return first
        with Session(self.db.engine) as session:
            current = utcnow()
            return assertions.first_use(session, key, current + dt.timedelta(seconds=seconds), current)

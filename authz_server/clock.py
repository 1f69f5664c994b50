"""The clock: the current time, timezone-aware in UTC, for every layer (rows,
tokens, policies). Tests freeze it with time-machine."""
from __future__ import annotations

import datetime as dt


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)

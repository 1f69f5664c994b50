"""Client assertions already used (RFC 7523 §3 item 7), kept until they expire."""
from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base, UTCDateTime


class UsedClientAssertion(Base):
    """One row per ``private_key_jwt`` assertion accepted, keyed by a SHA-256
    digest of its client_id and jti: the primary key is what refuses a replay,
    on every node that shares the database."""

    __tablename__ = "used_client_assertions"

    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at = mapped_column(UTCDateTime, nullable=False, index=True)

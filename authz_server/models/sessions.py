"""Member sessions ended by a logout (browser sessions, not Stytch's)."""
from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base, UTCDateTime


class EndedMemberSession(Base):
    """The digest of a signed-out session id, kept until a copy of that session's
    cookie would be too old for its signature to be accepted anyway."""

    __tablename__ = "ended_member_sessions"

    session_id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at = mapped_column(UTCDateTime, nullable=False, index=True)

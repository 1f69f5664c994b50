"""Device authorizations (RFC 8628): one row per device_code, from the device's
request until the tokens are issued or the codes expire."""
from __future__ import annotations

from sqlalchemy import JSON, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..clock import utcnow
from ..db import Base, UTCDateTime

PENDING, APPROVED, DENIED, ISSUED = "pending", "approved", "denied", "issued"


class DeviceAuthorization(Base):
    """Both codes are stored only as SHA-256 digests (docs/architecture.md#secrets-at-rest). The member's
    identity is filled in when they approve on the verification page; the token
    endpoint then turns ``approved`` into ``issued`` exactly once."""

    __tablename__ = "device_authorizations"

    device_code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.client_id", ondelete="CASCADE"), index=True)
    scope: Mapped[str] = mapped_column(Text, default="")
    resource: Mapped[list] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    # RFC 8628 §3.5: the polling interval, raised by 5 s at every slow_down.
    interval: Mapped[int] = mapped_column(Integer)
    last_polled_at = mapped_column(UTCDateTime)
    subject: Mapped[str | None] = mapped_column(String(255))
    organization_id: Mapped[str | None] = mapped_column(String(128))
    claims: Mapped[dict] = mapped_column(JSON, default=dict)
    auth_time = mapped_column(UTCDateTime)
    created_at = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    expires_at = mapped_column(UTCDateTime, nullable=False, index=True)
    decided_at = mapped_column(UTCDateTime)
    grant_id: Mapped[str | None] = mapped_column(String(64))

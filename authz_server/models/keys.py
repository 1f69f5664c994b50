"""Signing keys: next → active → retired (OIDC Core §10.1.1)."""
from __future__ import annotations

from sqlalchemy import JSON, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..clock import utcnow
from ..db import Base, UTCDateTime


class SigningKey(Base):
    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), index=True)  # next | active | retired | revoked
    public_jwk: Mapped[dict] = mapped_column(JSON)
    # The private JWK, encrypted with AUTHZ_KEY_ENCRYPTION_KEY (Fernet).
    private_jwk_encrypted: Mapped[str] = mapped_column(Text)
    created_at = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    activated_at = mapped_column(UTCDateTime)
    retired_at = mapped_column(UTCDateTime)
    # A revoked key (compromised) is neither published nor trusted any more.
    revoked_at = mapped_column(UTCDateTime)

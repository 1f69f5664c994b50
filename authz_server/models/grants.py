"""Authorization codes, grants (refresh-token families), refresh tokens, pending
authorization requests and the access-token revocation list."""
from __future__ import annotations

from sqlalchemy import JSON, Boolean, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from ..clock import utcnow
from ..db import Base, UTCDateTime


class AuthorizationCode(Base):
    """A single-use code (RFC 6749 §4.1.2), kept after use so a replay can be
    detected and the tokens it produced revoked (OAuth 2.1 §4.1.3)."""

    __tablename__ = "authorization_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.client_id", ondelete="CASCADE"), index=True)
    redirect_uri: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(Text, default="")
    resource: Mapped[list] = mapped_column(JSON, default=list)
    nonce: Mapped[str | None] = mapped_column(Text)
    code_challenge: Mapped[str] = mapped_column(String(128))
    code_challenge_method: Mapped[str] = mapped_column(String(10), default="S256")
    subject: Mapped[str] = mapped_column(String(255))
    organization_id: Mapped[str | None] = mapped_column(String(128))
    claims: Mapped[dict] = mapped_column(JSON, default=dict)
    auth_time = mapped_column(UTCDateTime, nullable=False)
    max_age_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    expires_at = mapped_column(UTCDateTime, nullable=False)
    used_at = mapped_column(UTCDateTime)
    grant_id: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (Index("ix_authorization_codes_client_nonce", "client_id", "nonce"),)


class Grant(Base):
    """What one authorization produced: the refresh-token family (RFC 9700 §4.14).

    Access tokens carry its id (claim ``gid``), so revoking the grant makes them
    inactive at introspection too (RFC 7009 §2.1)."""

    __tablename__ = "grants"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.client_id", ondelete="CASCADE"), index=True)
    subject: Mapped[str] = mapped_column(String(255), index=True)
    organization_id: Mapped[str | None] = mapped_column(String(128))
    scope: Mapped[str] = mapped_column(Text, default="")
    resource: Mapped[list] = mapped_column(JSON, default=list)
    claims: Mapped[dict] = mapped_column(JSON, default=dict)
    auth_time = mapped_column(UTCDateTime, nullable=False)
    created_at = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    expires_at = mapped_column(UTCDateTime, nullable=False)
    revoked_at = mapped_column(UTCDateTime)
    revoked_reason: Mapped[str | None] = mapped_column(String(64))


class RefreshToken(Base):
    """One refresh token of a family. Rotation marks it used and issues a child.

    The grant's fields the refresh grant needs are copied onto the token row on
    purpose: the hot path then reads and marks a token in one UPDATE … RETURNING
    (three statements per refresh in all). Revoking a grant revokes its rows."""

    __tablename__ = "refresh_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    grant_id: Mapped[str] = mapped_column(ForeignKey("grants.id", ondelete="CASCADE"), index=True)
    parent_hash: Mapped[str | None] = mapped_column(String(64))
    client_id: Mapped[str] = mapped_column(String(255))
    subject: Mapped[str] = mapped_column(String(255))
    organization_id: Mapped[str | None] = mapped_column(String(128))
    scope: Mapped[str] = mapped_column(Text, default="")
    resource: Mapped[list] = mapped_column(JSON, default=list)
    claims: Mapped[dict] = mapped_column(JSON, default=dict)
    auth_time = mapped_column(UTCDateTime, nullable=False)
    created_at = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    # Idle expiry (OAuth 2.1 §4.3.3): a fresh token each rotation, so created_at
    # plus the idle lifetime, capped by the grant's absolute expiry.
    expires_at = mapped_column(UTCDateTime, nullable=False)
    grant_expires_at = mapped_column(UTCDateTime, nullable=False)
    used_at = mapped_column(UTCDateTime)
    revoked_at = mapped_column(UTCDateTime)
    # The child this token's rotation issued, encrypted with the key-encryption
    # key (Fernet), kept while a replay inside the grace window must get that same
    # child rather than a second live branch; cleared within a window after its
    # own closed (storage.grants._forget_children).
    child_token_encrypted: Mapped[str | None] = mapped_column(Text)

    # Only the tokens whose child is still kept (those used within the last grace
    # window): the in-passing sweep of storage.grants finds the stale ones here
    # without scanning the table.
    __table_args__ = (Index("ix_refresh_tokens_child_kept", "used_at",
                            postgresql_where=text("child_token_encrypted IS NOT NULL"),
                            sqlite_where=text("child_token_encrypted IS NOT NULL")),)


class RevokedAccessToken(Base):
    """JWT access tokens revoked one by one (RFC 7009 §2), kept until they expire."""

    __tablename__ = "revoked_access_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at = mapped_column(UTCDateTime, nullable=False, index=True)


class PendingAuthorization(Base):
    """An authorization request parked server-side while the member logs in."""

    __tablename__ = "pending_authorizations"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    params: Mapped[dict] = mapped_column(JSON)
    # Digest of the binding value in the signed session cookie of the browser
    # that parked it: only that browser may resume it.
    browser_hash: Mapped[str] = mapped_column(String(64))
    created_at = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    expires_at = mapped_column(UTCDateTime, nullable=False, index=True)

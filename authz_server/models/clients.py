"""Registered clients and their types."""
from __future__ import annotations

import enum
import hmac

from sqlalchemy import JSON, Boolean, Index, String, Text
from sqlalchemy import false as sa_false
from sqlalchemy.orm import Mapped, mapped_column

from ..clock import utcnow
from ..db import Base, UTCDateTime
from ..security import digest


class RegisteredVia(enum.StrEnum):
    """How a client came to exist: created by an operator (CLI), registered
    itself (RFC 7591 dynamic registration) or named a client ID metadata
    document (its client_id is the document's URL). Self-registered clients'
    metadata is self-asserted (RFC 7591 §5)."""

    ADMIN = "admin"
    DCR = "dcr"
    CIMD = "cimd"


class ClientType(str, enum.Enum):
    """Who the client is (first or third party) and whether it keeps a secret.

    First-party clients skip the consent page; public clients authenticate with
    ``none`` and must use PKCE (they always must here).
    """

    FIRST_PARTY = "first_party"
    FIRST_PARTY_PUBLIC = "first_party_public"
    THIRD_PARTY = "third_party"
    THIRD_PARTY_PUBLIC = "third_party_public"

    @property
    def is_public(self) -> bool:
        return self in (ClientType.FIRST_PARTY_PUBLIC, ClientType.THIRD_PARTY_PUBLIC)

    @property
    def is_first_party(self) -> bool:
        return self in (ClientType.FIRST_PARTY, ClientType.FIRST_PARTY_PUBLIC)


class Client(Base):
    __tablename__ = "clients"

    client_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    client_secret_hash: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    client_type: Mapped[str] = mapped_column(String(32))
    redirect_uris: Mapped[list] = mapped_column(JSON, default=list)
    post_logout_redirect_uris: Mapped[list] = mapped_column(JSON, default=list)
    # Scopes this client may ask for; empty means "any scope in the catalog".
    scopes: Mapped[list] = mapped_column(JSON, default=list)
    # Set by an operator only, never by registration (oauth.permissions): the
    # registered resources (RFC 8707 audiences, with their scopes) the client
    # may ask for, and those whose access tokens it may introspect (RFC 7662).
    allowed_resources: Mapped[list] = mapped_column(JSON, default=list, server_default="[]")
    introspection_resources: Mapped[list] = mapped_column(JSON, default=list, server_default="[]")
    grant_types: Mapped[list] = mapped_column(JSON, default=list)
    token_endpoint_auth_method: Mapped[str] = mapped_column(String(40))
    logo_uri: Mapped[str | None] = mapped_column(Text)
    client_uri: Mapped[str | None] = mapped_column(Text)
    organization_id: Mapped[str | None] = mapped_column(String(128))
    id_token_signed_response_alg: Mapped[str | None] = mapped_column(String(16))
    require_auth_time: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    updated_at = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False)
    secret_rotated_at = mapped_column(UTCDateTime)
    disabled_at = mapped_column(UTCDateTime)

    # --- Dynamic registration (RFC 7591 / RFC 7592) -----------------------
    # How the client came to exist (RegisteredVia: admin, dcr or cimd).
    registered_via: Mapped[str] = mapped_column(String(16), default=RegisteredVia.ADMIN.value,
                                                server_default=RegisteredVia.ADMIN.value)
    # OIDC Registration §2: "web" or "native"; None for admin clients.
    application_type: Mapped[str | None] = mapped_column(String(16))
    # RFC 7592 §3: the registration access token, as a SHA-256 digest (docs/architecture.md#secrets-at-rest).
    registration_access_token_hash: Mapped[str | None] = mapped_column(String(64))
    # Keyed digest of the registering address, and digest of the effective
    # metadata: identical public registrations from one source share a client.
    registration_source: Mapped[str | None] = mapped_column(String(64))
    registration_fingerprint: Mapped[str | None] = mapped_column(String(64))
    # True once an identical public registration was handed this client too
    # (deduplication): no single registrant owns it, so RFC 7592 updates and
    # deletion are refused (the first registrant may still read it).
    registration_shared: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sa_false())
    # When a token was last issued to the client (refreshed at most daily, for
    # DCR clients only): `clients gc` deletes DCR clients that never got one.
    last_used_at = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_clients_registration_dedup", "registration_source", "registration_fingerprint"),)

    # --- Domain helpers -------------------------------------------------
    @property
    def type(self) -> ClientType:
        return ClientType(self.client_type)

    @property
    def is_public(self) -> bool:
        return self.type.is_public

    @property
    def is_first_party(self) -> bool:
        return self.type.is_first_party

    @property
    def is_active(self) -> bool:
        return self.disabled_at is None

    def verify_secret(self, secret: str | None) -> bool:
        if not secret or not self.client_secret_hash:
            return False
        return hmac.compare_digest(digest(secret), self.client_secret_hash)

    def to_public_dict(self) -> dict:
        """The client's metadata as shown to admins (never the secret or its digest)."""
        data = {
            "client_id": self.client_id,
            "client_name": self.name,
            "client_type": self.client_type,
            "redirect_uris": list(self.redirect_uris or []),
            "post_logout_redirect_uris": list(self.post_logout_redirect_uris or []),
            "scope": " ".join(self.scopes or []),
            "grant_types": list(self.grant_types or []),
            "token_endpoint_auth_method": self.token_endpoint_auth_method,
            "logo_uri": self.logo_uri,
            "client_uri": self.client_uri,
            "organization_id": self.organization_id,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "disabled": self.disabled_at is not None,
            "registered_via": self.registered_via if self.registered_via != RegisteredVia.ADMIN else None,
            "application_type": self.application_type,
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
            "allowed_resources": list(self.allowed_resources or []),
            "introspection_resources": list(self.introspection_resources or []),
        }
        return {k: v for k, v in data.items() if v not in (None, "")}

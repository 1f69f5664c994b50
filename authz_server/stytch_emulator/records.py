"""Records of the emulated project (organizations, members, sessions, tokens),
the id and token formats, and the lifetimes Stytch documents or we chose.

Ids follow Stytch's formats (``organization-test-<uuid>`` and so on). Tokens are
44-character URL-safe strings like Stytch's, so a malformed one can be told
apart from an unknown one (400 ``invalid_session_token`` vs 404).
"""
from __future__ import annotations

import copy
import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass, field

# The organisation settings Stytch returns on every Organization object, with
# the defaults a newly created organization gets.
DEFAULT_SETTINGS: dict = {
    "sso_jit_provisioning": "ALL_ALLOWED",
    "sso_jit_provisioning_allowed_connections": [],
    "email_allowed_domains": [],
    "email_jit_provisioning": "NOT_ALLOWED",
    "email_invites": "ALL_ALLOWED",
    "auth_methods": "ALL_ALLOWED",
    "allowed_auth_methods": [],
    "mfa_policy": "OPTIONAL",
    "rbac_email_implicit_role_assignments": [],
    "mfa_methods": "ALL_ALLOWED",
    "allowed_mfa_methods": [],
    "oauth_tenant_jit_provisioning": "NOT_ALLOWED",
    "allowed_oauth_tenants": {},
    "claimed_email_domains": [],
    "first_party_connected_apps_allowed_type": "ALL_ALLOWED",
    "allowed_first_party_connected_apps": [],
    "third_party_connected_apps_allowed_type": "ALL_ALLOWED",
    "allowed_third_party_connected_apps": [],
}

IST_TTL = 10 * 60  # intermediate sessions: 10 minutes (Stytch's documented lifetime)
OAUTH_TOKEN_TTL = 10 * 60  # Stytch documents no number; short and single-use
OTP_TTL_MINUTES = 10
OTP_MAX_WRONG = 5
MAGIC_LINK_TTL_MINUTES = 60
SESSION_MINUTES = 60

_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{44}$")

# Stable namespace for the seeded ids, so `make run` restarts keep Alice's
# member_id and anything the server stored about her stays meaningful.
SEED_NAMESPACE = uuid.UUID("5f0c6a52-6b1e-4c53-9d59-3c1f4e2b7a10")


def new_id(kind: str) -> str:
    return f"{kind}-test-{uuid.uuid4()}"


def new_token() -> str:
    return secrets.token_urlsafe(33)  # 44 characters


def well_formed(token: str) -> bool:
    return bool(_TOKEN_RE.match(token or ""))


def email_domain(email: str) -> str:
    return email.rpartition("@")[2].lower()


@dataclass
class Organization:
    organization_id: str
    name: str
    slug: str
    created_at: float
    updated_at: float
    logo_url: str = ""
    external_id: str | None = None
    trusted_metadata: dict = field(default_factory=dict)
    settings: dict = field(default_factory=lambda: copy.deepcopy(DEFAULT_SETTINGS))

    def jit_allows(self, email: str) -> bool:
        """Email-domain JIT: RESTRICTED with the email's domain in the allowed list."""
        return self.settings["email_jit_provisioning"] == "RESTRICTED" and email_domain(email) in {
            d.lower() for d in self.settings["email_allowed_domains"]
        }


@dataclass
class OAuthRegistration:
    provider_type: str  # "Google" / "Microsoft"
    provider_subject: str
    registration_id: str = field(default_factory=lambda: new_id("member-oauth-registration"))
    oauth_user_id: str = field(default_factory=lambda: new_id("oauth-user"))


@dataclass
class Member:
    member_id: str
    organization_id: str
    email: str
    name: str
    status: str  # "active" | "pending" | "deleted"
    created_at: float
    updated_at: float
    roles: list[str] = field(default_factory=lambda: ["stytch_member"])
    email_id: str = field(default_factory=lambda: new_id("email"))
    oauth_registrations: list[OAuthRegistration] = field(default_factory=list)

    @property
    def is_admin(self) -> bool:
        return "stytch_admin" in self.roles

    def registration(self, provider_type: str, subject: str) -> OAuthRegistration:
        for reg in self.oauth_registrations:
            if reg.provider_type == provider_type and reg.provider_subject == subject:
                return reg
        reg = OAuthRegistration(provider_type, subject)
        self.oauth_registrations.append(reg)
        return reg


@dataclass
class Session:
    member_session_id: str
    token: str
    member_id: str
    organization_id: str
    started_at: float
    last_accessed_at: float
    expires_at: float
    factors: list[dict]
    custom_claims: dict = field(default_factory=dict)


@dataclass
class OAuthToken:
    """What the identity-provider page learnt, waiting for *.authenticate."""

    token: str
    discovery: bool
    provider: str  # "google" / "microsoft"
    email: str
    name: str
    provider_subject: str
    expires_at: float
    organization_id: str | None = None
    pkce_challenge: str | None = None
    used: bool = False


@dataclass
class IntermediateSession:
    token: str
    email: str
    name: str
    factors: list[dict]
    expires_at: float
    organization_id: str | None = None  # set when issued by an organization flow
    consumed: bool = False


@dataclass
class Passcode:
    code: str
    expires_at: float
    wrong: int = 0
    used: bool = False


@dataclass
class MagicLink:
    token: str
    organization_id: str
    member_id: str
    expires_at: float
    pkce_challenge: str | None = None
    used: bool = False


def provider_subject(provider: str, email: str) -> str:
    """A stable subject per (provider, email), shaped like the real IdP's."""
    digest = hashlib.sha256(f"{provider}:{email.lower()}".encode()).hexdigest()
    if provider == "google":
        return str(int(digest, 16))[:21]  # Google subjects are long decimal strings
    return str(uuid.UUID(digest[:32]))  # Microsoft object ids are GUIDs

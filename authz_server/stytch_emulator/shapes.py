"""JSON builders: the exact objects the ``stytch`` SDK models parse.

Every required key is always present; a value that does not apply is ``""`` or
``[]`` for required fields and ``None`` only where the SDK field is Optional.
Factor records are stored as small descriptors (method, provider subject, time)
and rendered here, so one session renders the same way in its API responses and
in its JWT claims.
"""
from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from .records import Member, Organization, Session


@dataclass(frozen=True)
class Provider:
    slug: str  # path segment: google / microsoft
    display: str  # provider_type in API responses
    delivery_method: str  # AuthenticationFactor.delivery_method
    factor_key: str  # provider-specific sub-object of AuthenticationFactor
    auth_method: str  # name in Organization.allowed_auth_methods


PROVIDERS = {
    "google": Provider("google", "Google", "oauth_google", "google_oauth_factor", "google_oauth"),
    "microsoft": Provider("microsoft", "Microsoft", "oauth_microsoft", "microsoft_oauth_factor", "microsoft_oauth"),
}
PROVIDER_BY_METHOD = {p.auth_method: p for p in PROVIDERS.values()}


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(int(ts), dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def organization(org: Organization) -> dict:
    return {
        "organization_id": org.organization_id,
        "organization_name": org.name,
        "organization_logo_url": org.logo_url,
        "organization_slug": org.slug,
        "organization_external_id": org.external_id,
        **org.settings,
        "sso_active_connections": [],
        "sso_default_connection_id": None,
        "scim_active_connection": None,
        "custom_roles": [],
        "trusted_metadata": org.trusted_metadata,
        "created_at": iso(org.created_at),
        "updated_at": iso(org.updated_at),
    }


def member(m: Member) -> dict:
    return {
        "organization_id": m.organization_id,
        "member_id": m.member_id,
        "email_address": m.email,
        "status": m.status,
        "name": m.name,
        "sso_registrations": [],
        "is_breakglass": False,
        "member_password_id": "",
        "oauth_registrations": [
            {
                "provider_type": r.provider_type,
                "provider_subject": r.provider_subject,
                "member_oauth_registration_id": r.registration_id,
                "profile_picture_url": "",
                "locale": "",
            }
            for r in m.oauth_registrations
        ],
        "email_address_verified": m.status == "active",
        "mfa_phone_number_verified": False,
        "is_admin": m.is_admin,
        "totp_registration_id": "",
        "retired_email_addresses": [],
        "is_locked": False,
        "mfa_enrolled": False,
        "mfa_phone_number": "",
        "default_mfa_method": "",
        "roles": [{"role_id": r, "sources": [{"type": "direct_assignment", "details": {}}]} for r in m.roles],
        "trusted_metadata": {},
        "untrusted_metadata": {},
        "created_at": iso(m.created_at),
        "updated_at": iso(m.updated_at),
        "external_id": None,
    }


def factor_descriptor(method: str, at: float, provider_subject: str | None = None) -> dict:
    """What a session or intermediate session remembers about one factor."""
    return {"method": method, "provider_subject": provider_subject, "at": at}


def factor(desc: dict, m: Member) -> dict:
    """An AuthenticationFactor with the enum pair the SDK's model requires."""
    at = iso(desc["at"])
    base = {"last_authenticated_at": at, "created_at": at, "updated_at": at}
    if desc["method"] in ("email_otp", "magic_link"):
        return {
            "type": desc["method"],
            "delivery_method": "email",
            **base,
            "email_factor": {"email_id": m.email_id, "email_address": m.email},
        }
    provider = PROVIDER_BY_METHOD[desc["method"]]
    reg = next(
        (r for r in m.oauth_registrations
         if r.provider_type == provider.display and r.provider_subject == desc["provider_subject"]),
        None,
    )
    return {
        "type": "oauth",
        "delivery_method": provider.delivery_method,
        **base,
        provider.factor_key: {
            "id": reg.oauth_user_id if reg else "",
            "provider_subject": desc["provider_subject"],
            "email_id": m.email_id,
        },
    }


def member_session(s: Session, m: Member, org: Organization) -> dict:
    return {
        "member_session_id": s.member_session_id,
        "member_id": s.member_id,
        "organization_id": org.organization_id,
        "organization_slug": org.slug,
        "started_at": iso(s.started_at),
        "last_accessed_at": iso(s.last_accessed_at),
        "expires_at": iso(s.expires_at),
        "authentication_factors": [factor(d, m) for d in s.factors],
        "custom_claims": dict(s.custom_claims),
        "roles": list(m.roles),
    }


JWT_LIFETIME = 300  # Stytch session JWTs live 5 minutes
JWT_BACKDATE = 5  # SDK leeway is 0: back-date so a client clock a little behind still accepts nbf/iat


def session_claims(project_id: str, s: Session, m: Member, org: Organization, now: float) -> dict:
    """The claim set of a Stytch session JWT, custom claims at the top level."""
    iat = int(now) - JWT_BACKDATE
    return {
        **s.custom_claims,
        "aud": [project_id],  # a list: IDP helpers in the SDK reject a string aud
        "iss": f"stytch.com/{project_id}",
        "sub": m.member_id,
        "iat": iat,
        "nbf": iat,
        # Never outlive the session itself, which may end within the 5 minutes.
        "exp": max(iat + 1, min(iat + JWT_LIFETIME, int(s.expires_at))),
        "jti": str(uuid.uuid4()),
        "https://stytch.com/session": {
            "id": s.member_session_id,
            "started_at": iso(s.started_at),
            "last_accessed_at": iso(s.last_accessed_at),
            "expires_at": iso(s.expires_at),
            "attributes": {"ip_address": "", "user_agent": ""},
            "authentication_factors": [factor(d, m) for d in s.factors],
            "roles": list(m.roles),
        },
        "https://stytch.com/organization": {"organization_id": org.organization_id, "slug": org.slug},
    }


def discovered_organization(org: Organization, membership_type: str, m: Member | None,
                            required: list[str] | None) -> dict:
    return {
        "organization": organization(org),
        "membership": {"type": membership_type, "details": None, "member": member(m) if m else None},
        "member_authenticated": not required,
        "primary_required": {"allowed_auth_methods": required} if required else None,
        "mfa_required": None,
    }

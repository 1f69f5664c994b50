"""Which member claims go where, by scope (OIDC Core §5.4).

``sub`` is the Stytch member id. A member id belongs to one organization, so
``sub`` is stable per member and organization (OIDC Core §2; docs/requirements.md: A21-95); the
organization rides along as ``organization_id``, ``organization_slug`` and
``organization_name`` whenever ``openid`` is granted.
"""
from __future__ import annotations

ORGANIZATION_CLAIMS = ("organization_id", "organization_slug", "organization_name")
SCOPE_CLAIMS = {
    "profile": ("name", "roles"),
    "email": ("email", "email_verified"),
}


def id_token_claims(member: dict, scopes: list[str]) -> dict:
    out = {}
    if "openid" not in scopes:
        return out
    for name in ORGANIZATION_CLAIMS:
        if member.get(name) not in (None, ""):
            out[name] = member[name]
    for scope, names in SCOPE_CLAIMS.items():
        if scope in scopes:
            for name in names:
                if member.get(name) not in (None, "", []):
                    out[name] = member[name]
    return out


def userinfo(subject: str, member: dict, scopes: list[str]) -> dict:
    return {"sub": subject, **id_token_claims(member, scopes)}

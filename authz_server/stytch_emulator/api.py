"""Stytch API routes for OAuth and discovery (``oauth.*`` and ``discovery.*`` in the SDK), behind Basic auth.

Each handler holds the store lock for its whole call, so a token is checked and
consumed atomically (two racing requests cannot both use it). Path parameters
the SDK echoes in the body or query are ignored there; the path is
authoritative. Sessions and the directory are in ``api_sessions.py``, email
OTP and magic links in ``api_email.py``.
"""
from __future__ import annotations

import re

from flask import Blueprint

from . import errors, flows, inputs, shapes
from .context import current, ok
from .records import DEFAULT_SETTINGS

bp = Blueprint("stytch_api", __name__)

_SLUG_RE = re.compile(r"^[A-Za-z0-9._~-]{2,128}$")
_SETTING_VALUES = {
    "sso_jit_provisioning": {"ALL_ALLOWED", "RESTRICTED", "NOT_ALLOWED"},
    "email_jit_provisioning": {"RESTRICTED", "NOT_ALLOWED"},
    "email_invites": {"ALL_ALLOWED", "RESTRICTED", "NOT_ALLOWED"},
    "auth_methods": {"ALL_ALLOWED", "RESTRICTED"},
    "mfa_policy": {"REQUIRED_FOR_ALL", "OPTIONAL"},
    "mfa_methods": {"ALL_ALLOWED", "RESTRICTED"},
    "oauth_tenant_jit_provisioning": {"RESTRICTED", "NOT_ALLOWED"},
    "first_party_connected_apps_allowed_type": {"ALL_ALLOWED", "RESTRICTED", "NOT_ALLOWED"},
    "third_party_connected_apps_allowed_type": {"ALL_ALLOWED", "RESTRICTED", "NOT_ALLOWED"},
}


# ------------------------------------------------------------------------ OAuth
@bp.post("/v1/b2b/oauth/discovery/authenticate")
def oauth_discovery_authenticate():
    emu, data = current(), inputs.body()
    store = emu.store
    with store.lock:
        token = store.usable_oauth_token(inputs.required(data, "discovery_oauth_token"), discovery=True)
        flows.check_pkce(token.pkce_challenge, data.get("pkce_code_verifier"))
        token.used = True
        provider = shapes.PROVIDERS[token.provider]
        factors = [shapes.factor_descriptor(provider.auth_method, store.now(), token.provider_subject)]
        ist = store.add_intermediate_session(token.email, token.name, factors)
        return ok({
            "intermediate_session_token": ist.token,
            "intermediate_session_token_expires_at": shapes.iso(ist.expires_at),
            "email_address": token.email,
            "discovered_organizations": [
                shapes.discovered_organization(*found) for found in flows.discover(store, token.email, factors)
            ],
            "provider_type": provider.display,
            "provider_tenant_id": "",
            "provider_tenant_ids": [],
            "full_name": token.name,
        })


@bp.post("/v1/b2b/oauth/authenticate")
def oauth_authenticate():
    emu, data = current(), inputs.body()
    store = emu.store
    minutes, claims = inputs.session_minutes(data), inputs.custom_claims(data)
    with store.lock:
        token = store.usable_oauth_token(inputs.required(data, "oauth_token"), discovery=False)
        flows.check_pkce(token.pkce_challenge, data.get("pkce_code_verifier"))
        org = store.organization(token.organization_id)
        ist = flows.ist_for(store, data.get("intermediate_session_token"), org, token.email)
        member = flows.member_for_login(store, org, token.email, token.name)
        token.used = True
        provider = shapes.PROVIDERS[token.provider]
        factor = shapes.factor_descriptor(provider.auth_method, store.now(), token.provider_subject)
        outcome = flows.finish_with_factor(store, org, member, factor, ist, minutes, claims)
        return ok({
            **emu.login_fields(outcome),
            "provider_subject": token.provider_subject,
            "provider_type": provider.display,
            "reset_sessions": False,  # deprecated by Stytch; always false
            # The upstream IdP's tokens: there is no real IdP behind the emulator.
            "provider_values": {"scopes": ["openid", "email", "profile"], "access_token": "",
                                "refresh_token": "", "id_token": "", "expires_at": None},
        })


# -------------------------------------------------------------------- discovery
@bp.post("/v1/b2b/discovery/intermediate_sessions/exchange")
def exchange_intermediate_session():
    emu, data = current(), inputs.body()
    store = emu.store
    minutes, claims = inputs.session_minutes(data), inputs.custom_claims(data)
    with store.lock:
        ist = store.live_intermediate_session(inputs.required(data, "intermediate_session_token"))
        org = store.organization(inputs.required(data, "organization_id"))
        flows.check_ist_binding(ist, org, ist.email)
        member = flows.member_for_login(store, org, ist.email, ist.name)
        outcome = flows.finish(store, org, member, ist.factors, ist=ist, minutes=minutes, custom_claims=claims)
        return ok(emu.login_fields(outcome))


def _slugify(name: str) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "organization"
    slug, n = base, 2
    while current().store.slug_taken(slug):
        slug, n = f"{base}-{n}", n + 1
    return slug


@bp.post("/v1/b2b/discovery/organizations/create")
def create_organization():
    emu, data = current(), inputs.body()
    store = emu.store
    minutes, claims = inputs.session_minutes(data), inputs.custom_claims(data)
    with store.lock:
        ist = store.live_intermediate_session(inputs.required(data, "intermediate_session_token"))
        name = (data.get("organization_name") or "").strip() or \
            ist.email.rpartition("@")[2].split(".")[0].title()
        slug = data.get("organization_slug") or _slugify(name)
        if not isinstance(slug, str) or not _SLUG_RE.match(slug):
            raise errors.bad_request("organization_slug must be 2-128 characters of letters, digits and -._~",
                                     "invalid_organization_slug")
        if store.slug_taken(slug):
            raise errors.bad_request("This organization slug is already used.", "organization_slug_already_used")
        external_id = data.get("organization_external_id")
        if external_id and store.find_organization(external_id):
            raise errors.bad_request("This external id is already used.", "organization_external_id_already_used")
        settings = {k: data[k] for k in DEFAULT_SETTINGS if data.get(k) is not None}
        for key, allowed in _SETTING_VALUES.items():
            if key in settings and settings[key] not in allowed:
                raise errors.bad_request(f"{key} must be one of {sorted(allowed)}.", "invalid_request_value")
        if settings.get("email_jit_provisioning") == "RESTRICTED" and not settings.get("email_allowed_domains"):
            raise errors.bad_request("RESTRICTED email JIT provisioning needs email_allowed_domains.",
                                     "invalid_restricted_email_setting")
        org = store.add_organization(name, slug, logo_url=data.get("organization_logo_url") or "",
                                     external_id=external_id, trusted_metadata=data.get("trusted_metadata"),
                                     **settings)
        # The creator administers the new organization (stytch_admin).
        member = store.add_member(org, ist.email, ist.name, admin=True, status="pending")
        outcome = flows.finish(store, org, member, ist.factors, ist=ist, minutes=minutes, custom_claims=claims)
        return ok(emu.login_fields(outcome))


@bp.post("/v1/b2b/discovery/organizations")
def list_discovered_organizations():
    emu, data = current(), inputs.body()
    store = emu.store
    given = [k for k in ("intermediate_session_token", "session_token", "session_jwt") if data.get(k)]
    if len(given) > 1:
        raise errors.bad_request("Send exactly one of intermediate_session_token, session_token, session_jwt.",
                                 "too_many_session_arguments")
    if not given:
        raise errors.bad_request("Send one of intermediate_session_token, session_token, session_jwt.",
                                 "no_session_arguments")
    with store.lock:
        hint = None
        if given[0] == "intermediate_session_token":
            ist = store.live_intermediate_session(data["intermediate_session_token"])
            email, factors = ist.email, ist.factors
        else:
            session = inputs.session_from(data)
            email, factors = store.members[session.member_id].email, session.factors
            hint = session.organization_id
        return ok({
            "email_address": email,
            "discovered_organizations": [
                shapes.discovered_organization(*found) for found in flows.discover(store, email, factors)
            ],
            "organization_id_hint": hint,
        })

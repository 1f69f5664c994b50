"""Stytch API routes for email OTP and magic links (§3.13-3.16).

Nothing is sent: each message lands in the outbox (``GET /emulator/outbox``).
A passcode or link sent with an ``intermediate_session_token`` completes a
step-up begun by an OAuth login or a discovery exchange.
"""
from __future__ import annotations

import secrets

from flask import Blueprint

from . import errors, flows, inputs, shapes
from .context import current, ok, with_query
from .records import MAGIC_LINK_TTL_MINUTES, OTP_MAX_WRONG, OTP_TTL_MINUTES

bp = Blueprint("stytch_api_email", __name__)


# -------------------------------------------------------------------- email OTP
@bp.post("/v1/b2b/otps/email/login_or_signup")
def otp_login_or_signup():
    emu, data = current(), inputs.body()
    store = emu.store
    with store.lock:
        org, email, member, created = _member_to_reach(store, data)
        name = "signup_expiration_minutes" if created else "login_expiration_minutes"
        store.issue_passcode(org, email, inputs.minutes(data, name, OTP_TTL_MINUTES, 2, 15))
        return _login_or_signup_response(member, created, org)


@bp.post("/v1/b2b/otps/email/authenticate")
def otp_authenticate():
    emu, data = current(), inputs.body()
    store = emu.store
    minutes, claims = inputs.session_minutes(data), inputs.custom_claims(data)
    with store.lock:
        org = store.organization(inputs.required(data, "organization_id"))
        email, code = inputs.email_address(data), inputs.required(data, "code")
        ist = flows.ist_for(store, data.get("intermediate_session_token"), org, email)
        passcode = store.passcodes.get((org.organization_id, email))
        if passcode is None:
            raise errors.ApiError(404, "otp_code_not_found", "No passcode was sent to this email address.")
        if passcode.used or passcode.wrong >= OTP_MAX_WRONG or passcode.expires_at <= store.now():
            raise errors.ApiError(401, "unable_to_auth_otp_code",
                                  "The passcode was already used, expired, or tried wrongly too often.")
        if not secrets.compare_digest(passcode.code.encode(), code.encode()):
            passcode.wrong += 1
            raise errors.ApiError(404, "otp_code_not_found", "The passcode is not correct.")
        passcode.used = True
        member = store.find_member(org, email=email)
        if member is None:
            raise errors.member_not_found()
        factor = shapes.factor_descriptor("email_otp", store.now())
        outcome = flows.finish_with_factor(store, org, member, factor, ist, minutes, claims)
        return ok({**emu.login_fields(outcome), "method_id": member.email_id})


# ------------------------------------------------------------------ magic links
@bp.post("/v1/b2b/magic_links/email/login_or_signup")
def magic_link_login_or_signup():
    emu, data = current(), inputs.body()
    store = emu.store
    with store.lock:
        org, email, member, created = _member_to_reach(store, data)
        kind = "signup" if created else "login"
        redirect_url = data.get(f"{kind}_redirect_url") or emu.default_redirect_url
        if not redirect_url:
            raise errors.bad_request(f"Send {kind}_redirect_url (the emulator has no dashboard default).",
                                     f"no_{kind}_redirect_url")
        minutes = inputs.minutes(data, f"{kind}_expiration_minutes", MAGIC_LINK_TTL_MINUTES, 5, 10080)
        link = store.add_magic_link(member, minutes, data.get("pkce_code_challenge"))
        url = with_query(redirect_url, stytch_token_type="multi_tenant_magic_links", token=link.token)
        store.deliver(email, {"type": "magic_link", "link": url, "organization_id": org.organization_id})
        return _login_or_signup_response(member, created, org)


@bp.post("/v1/b2b/magic_links/authenticate")
def magic_link_authenticate():
    emu, data = current(), inputs.body()
    store = emu.store
    minutes, claims = inputs.session_minutes(data), inputs.custom_claims(data)
    with store.lock:
        link = store.magic_links.get(inputs.required(data, "magic_links_token"))
        if link is None:
            raise errors.ApiError(404, "magic_link_not_found", "The magic link could not be found.")
        if link.used or link.expires_at <= store.now():
            raise errors.ApiError(401, "unable_to_auth_magic_link", "The magic link was already used or expired.")
        flows.check_pkce(link.pkce_challenge, data.get("pkce_code_verifier"))
        org = store.organization(link.organization_id)
        member = store.find_member(org, member_id=link.member_id)
        if member is None:
            raise errors.member_not_found()
        ist = flows.ist_for(store, data.get("intermediate_session_token"), org, member.email)
        link.used = True
        factor = shapes.factor_descriptor("magic_link", store.now())
        outcome = flows.finish_with_factor(store, org, member, factor, ist, minutes, claims)
        return ok({**emu.login_fields(outcome), "method_id": member.email_id, "reset_sessions": False})


def _member_to_reach(store, data):
    """The organization, email and member (just-in-time created if the domain
    allows) of a ``login_or_signup`` call; under the store lock."""
    org = store.organization(inputs.required(data, "organization_id"))
    email = inputs.email_address(data)
    member, created = inputs.member_or_jit(org, email)
    return org, email, member, created


def _login_or_signup_response(member, created, org):
    """The shape both ``login_or_signup`` calls answer with (stytch-api.md §3.13, §3.15)."""
    return ok({"member_id": member.member_id, "member_created": created,
               "member": shapes.member(member), "organization": shapes.organization(org)})

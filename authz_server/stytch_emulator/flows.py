"""The login rules: who may enter which organization with which factors.

Two rules decide whether a set of primary factors is enough for an
organization (and otherwise which methods Stytch would ask for in
``primary_required``):
- an organization with ``auth_methods: RESTRICTED`` wants one factor from its
  ``allowed_auth_methods``;
- an email domain marked through ``POST /emulator/step-up-domains`` wants an
  email factor (``email_otp``, and a magic link counts too).
When they are not met Stytch answers ``member_authenticated: false`` and keeps
the factors in an intermediate session (IST); a later email OTP or magic link
sent with that IST completes the login.

Callers hold ``store.lock`` for the whole API call.
"""
from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass

from . import errors
from .shapes import PROVIDER_BY_METHOD
from .records import SESSION_MINUTES, IntermediateSession, Member, Organization, Session
from .store import Store

EMAIL_METHODS = {"email_otp", "magic_link"}


def required_methods(store: Store, org: Organization, email: str, factors: list[dict]) -> list[str] | None:
    methods = {f["method"] for f in factors}
    if org.settings["auth_methods"] == "RESTRICTED":
        allowed = list(org.settings["allowed_auth_methods"])
        if not methods & set(allowed):
            return allowed
    if store.needs_step_up(email) and not methods & EMAIL_METHODS:
        return ["email_otp"]
    return None


def merge_factors(existing: list[dict], new: dict | None) -> list[dict]:
    """A repeated method refreshes its factor instead of listing it twice."""
    merged = [dict(f) for f in existing if not new or f["method"] != new["method"]]
    if new:
        merged.append(dict(new))
    return merged


def finish_with_factor(store: Store, org: Organization, m: Member, factor: dict,
                       ist: IntermediateSession | None, minutes: int | None, custom_claims: dict | None) -> Outcome:
    """``finish`` after one more authentication: the factor joins those the IST
    (if any) already holds."""
    return finish(store, org, m, merge_factors(ist.factors if ist else [], factor), ist=ist, minutes=minutes,
                  custom_claims=custom_claims)


def discover(store: Store, email: str, factors: list[dict]) -> list[tuple[Organization, str, Member | None, list[str] | None]]:
    """Organizations this email may enter: its memberships, then email-domain JIT."""
    found = []
    with store.lock:
        for org in sorted(store.organizations.values(), key=lambda o: (o.created_at, o.name)):
            m = store.find_member(org, email=email)
            if m is not None:
                kind = {"active": "active_member", "pending": "pending_member"}.get(m.status, "invited_member")
            elif org.jit_allows(email):
                kind = "eligible_to_join_by_email_domain"
            else:
                continue
            found.append((org, kind, m, required_methods(store, org, email, factors)))
    return found


def member_for_login(store: Store, org: Organization, email: str, name: str) -> Member:
    """The live member with this email, or a JIT-provisioned pending one.

    A JIT member starts ``pending`` and turns ``active`` when its first full
    session is minted, so a step-up abandoned half way leaves no active member.
    """
    m = store.find_member(org, email=email)
    if m is not None:
        return m
    if not org.jit_allows(email):
        raise errors.invalid_email_for_jit()
    return store.add_member(org, email, name, status="pending")


@dataclass
class Outcome:
    organization: Organization
    member: Member
    session: Session | None = None
    intermediate_session: IntermediateSession | None = None
    required: list[str] | None = None


def finish(store: Store, org: Organization, m: Member, factors: list[dict], *,
           ist: IntermediateSession | None = None, minutes: int | None = None,
           custom_claims: dict | None = None) -> Outcome:
    """Mint a session if ``factors`` satisfy ``org``; otherwise keep them in an IST.

    A caller-supplied IST is returned unchanged (the same string, as Stytch does)
    with the new factors added; without one a fresh IST bound to the org is made.
    """
    for f in factors:
        # OAuth factors from discovery predate the member: register them now.
        if f["method"] in PROVIDER_BY_METHOD:
            m.registration(PROVIDER_BY_METHOD[f["method"]].display, f["provider_subject"])
    required = required_methods(store, org, m.email, factors)
    if required:
        if ist is None:
            ist = store.add_intermediate_session(m.email, m.name, factors, org.organization_id)
        else:
            ist.factors = [dict(f) for f in factors]
        return Outcome(org, m, intermediate_session=ist, required=required)
    if ist is not None:
        ist.consumed = True
    if m.status != "active":
        m.status = "active"
        m.updated_at = store.now()
    session = store.add_session(m, factors, minutes or SESSION_MINUTES, custom_claims)
    return Outcome(org, m, session=session)


def ist_for(store: Store, token: str | None, org: Organization, email: str) -> IntermediateSession | None:
    """The IST a step-up call passed in, checked against the org and the email."""
    if not token:
        return None
    ist = store.live_intermediate_session(token)
    check_ist_binding(ist, org, email)
    return ist


def check_ist_binding(ist: IntermediateSession, org: Organization, email: str) -> None:
    """An IST serves only its own email and, when an organization flow issued it, that organization."""
    if ist.organization_id not in (None, org.organization_id):
        raise errors.ApiError(
            400, "invalid_intermediate_session_token_for_organization",
            "The intermediate session token was issued for another organization.",
        )
    if ist.email != email.lower():
        raise errors.ApiError(
            400, "invalid_exchange_primary_factor_user",
            "The intermediate session token belongs to another email address.",
        )


def check_pkce(challenge: str | None, verifier: str | None) -> None:
    if verifier is not None and not isinstance(verifier, str):
        raise errors.bad_request("pkce_code_verifier must be a string.")
    if challenge and not verifier:
        raise errors.ApiError(400, "pkce_expected_code_verifier", "A pkce_code_verifier is required for this token.")
    if verifier and not challenge:
        raise errors.ApiError(400, "pkce_did_not_expect_code_verifier",
                              "A pkce_code_verifier was sent, but the flow was started without a challenge.")
    if challenge:
        computed = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if not secrets.compare_digest(computed, challenge):
            raise errors.ApiError(400, "pkce_mismatch", "The pkce_code_verifier does not match the challenge.")

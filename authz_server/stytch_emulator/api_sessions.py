"""Stytch API routes for sessions, the JWKS, organizations and members (§3.7-3.12)."""
from __future__ import annotations

from flask import Blueprint, request

from . import errors, inputs, shapes
from .context import current, ok

bp = Blueprint("stytch_api_sessions", __name__)


# --------------------------------------------------------------------- sessions
@bp.post("/v1/b2b/sessions/authenticate")
def authenticate_session():
    emu, data = current(), inputs.body()
    store = emu.store
    claims = inputs.custom_claims(data)
    with store.lock:
        session = inputs.session_from(data)
        now = store.now()
        # Without session_duration_minutes the session is not extended (§3.7).
        if data.get("session_duration_minutes") is not None:
            session.expires_at = now + inputs.session_minutes(data) * 60
        if claims:
            merged = {**session.custom_claims, **claims}
            session.custom_claims = {k: v for k, v in merged.items() if v is not None}
        session.last_accessed_at = now
        return ok({**emu.session_fields(session), "verdict": None})


@bp.post("/v1/b2b/sessions/revoke")
def revoke_session():
    emu, data = current(), inputs.body()
    store = emu.store
    keys = ("member_session_id", "session_token", "session_jwt", "member_id")
    given = [k for k in keys if data.get(k)]
    if not given:
        raise errors.bad_request("Send one of member_session_id, session_token, session_jwt, member_id.",
                                 "no_session_revoke_arguments")
    if len(given) > 1:
        raise errors.bad_request("Send only one of member_session_id, session_token, session_jwt, member_id.",
                                 "too_many_session_revoke_arguments")
    with store.lock:
        if given[0] == "member_id":
            if data["member_id"] not in store.members:
                raise errors.member_not_found()
            store.revoke_sessions(member_id=data["member_id"])
        elif given[0] == "member_session_id":
            store.revoke_sessions(session_id=store.live_session(session_id=data["member_session_id"]).member_session_id)
        else:
            store.revoke_sessions(session_id=inputs.session_from(data).member_session_id)
        return ok({})


@bp.get("/v1/b2b/sessions/jwks/<project_id>")
def jwks(project_id: str):
    # No Basic auth here: PyJWKClient fetches it with a bare urllib GET (§3.9).
    emu = current()
    if project_id != emu.project_id:
        raise errors.ApiError(404, "project_not_found", "Project could not be found.")
    return ok({"keys": [emu.signer.jwk()]})


# ---------------------------------------------------------------- organizations
@bp.get("/v1/b2b/organizations/<organization_id>")
def get_organization(organization_id: str):
    store = current().store
    with store.lock:
        return ok({"organization": shapes.organization(store.organization(organization_id))})


@bp.get("/v1/b2b/organizations/<organization_id>/member")
def get_member(organization_id: str):
    store = current().store
    member_id, email = request.args.get("member_id"), request.args.get("email_address")
    if not member_id and not email:
        raise errors.bad_request("Send member_id or email_address.")
    with store.lock:
        org = store.organization(organization_id)
        member = store.find_member(org, member_id=member_id) if member_id else store.find_member(org, email=email)
        if member is None:
            raise errors.member_not_found()
        return ok({"member_id": member.member_id, "member": shapes.member(member),
                   "organization": shapes.organization(org)})


@bp.delete("/v1/b2b/organizations/<organization_id>/members/<member_id>")
def delete_member(organization_id: str, member_id: str):
    # Soft delete, as Stytch's (members.reactivate exists): status "deleted",
    # invisible to get/discovery/login, and every session revoked at once.
    store = current().store
    with store.lock:
        org = store.organization(organization_id)
        member = store.find_member(org, member_id=member_id)
        if member is None:
            raise errors.member_not_found()
        store.delete_member(member)
        return ok({"member_id": member.member_id})
